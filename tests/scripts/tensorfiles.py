"""tensorfiles.py - .npy and safetensors files of f32 values for the shell
tests, with nothing but the standard library (CI's tests need no numpy
here): `sys.path.insert(0, <this dir>); from tensorfiles import ...`."""
import array
import json
import struct


def write_npy(path, shape, values):
    """An f32 .npy (format 1.0, C order) of `shape` holding `values`."""
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % "".join("%d, " % n for n in shape)
    hdr += " " * (-(len(hdr) + 11) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode())
        f.write(array.array("f", values).tobytes())


def write_safetensors(path, tensors):
    """A safetensors file of f32 tensors: {key: (shape, values)}, in that order."""
    head, off, blobs = {}, 0, []
    for k, (shape, vals) in tensors.items():
        b = array.array("f", vals).tobytes()
        head[k] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(head).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
