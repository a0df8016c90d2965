#!/usr/bin/env python3
"""attnc.export checks that need torch (run by tests/scripts/export_torch.sh with
a Python that has torch, transformers and torchvision; skipped elsewhere):
the golden programs regenerate byte for byte, refused modules give the
documented errors and write nothing, the CLI works.  $ATTNC is the compiler."""

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import attnc  # noqa: E402
import gen  # noqa: E402

ATTNC = os.environ.get("ATTNC", str(ROOT / "build" / "attnc"))


class _Cumsum(nn.Module):
    def forward(self, x):
        return x.cumsum(-1)


class _Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = _Cumsum()

    def forward(self, x):
        return self.self_attn(x)


class Unsupported(nn.Module):
    """An op attnc has no mapping for, at encoder.layers.0.self_attn."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList([_Layer()])

    def forward(self, x):
        return self.encoder.layers[0](x)


class DataDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x


class Pooled(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(2)

    def forward(self, x):
        return self.pool(x) * 2


class Strided(nn.Module):
    def forward(self, x):
        return x[:, ::2] * 2


class TestExport(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.d = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def test_golden(self):
        # mha and se_block regenerate exactly as committed (program and weights)
        for case in ("mha", "se_block"):
            with self.subTest(case=case):
                gen.make(case, str(self.d))
                for f in sorted((HERE / case).iterdir()):
                    new = self.d / case / f.name
                    self.assertTrue(new.exists(), "%s not regenerated" % f.name)
                    if f.suffix == ".attn":
                        self.assertEqual(new.read_text(), f.read_text(), "%s/%s differs" % (case, f.name))
                    elif f.name == "weights.safetensors":
                        self.assertEqual(new.read_bytes(), f.read_bytes(), "%s/%s differs" % (case, f.name))

    def refused(self, module, args, pattern, dynamic=None):
        out = self.d / "m.attn"
        out.write_text("keep me\n")
        with self.assertRaises(attnc.export.ExportError) as cm:
            attnc.export(module, args, str(out), dynamic=dynamic)
        self.assertRegex(str(cm.exception), pattern)
        self.assertEqual(out.read_text(), "keep me\n", "an existing output was changed")
        self.assertFalse((self.d / "m.safetensors").exists(), "weights written on error")
        self.assertEqual(sorted(p.name for p in self.d.iterdir()), ["m.attn"])
        return str(cm.exception)

    def test_unsupported_op(self):
        msg = self.refused(Unsupported(), (torch.randn(2, 4),),
                           r"^encoder\.layers\.0\.self_attn: aten\.cumsum\.default is not "
                           r"supported by attnc \(nearest supported: ", {"x": {0: "B"}})
        print("\n# " + msg, file=sys.stderr)

    def test_data_dependent(self):
        self.refused(DataDependent(), (torch.randn(2, 4),),
                     r"^DataDependent: the module's control flow depends on tensor values; "
                     r"attnc programs cannot express that \(nearest supported: torch\.where")

    def test_shape_not_expressible(self):
        # a floor division of a dim (pooling a run-time image size)
        self.refused(Pooled(), (torch.randn(2, 3, 8, 8),),
                     r"^Pooled \(top level\): the size \(H//2\) cannot be expressed in attnc",
                     {"x": {2: ("H", 4, 64), 3: ("W", 4, 64)}})

    def test_strided_slice(self):
        self.refused(Strided(), (torch.randn(2, 6),),
                     r"^Strided \(top level\): aten\.slice\.Tensor with step 2 is not supported by attnc")

    def test_training_mode(self):
        m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
        m.train()
        # export() switches the module to eval mode: dropout is then the identity
        r = attnc.export(m, (torch.randn(2, 4),), str(self.d / "d.attn"))
        code = [ln for ln in r.text.splitlines() if not ln.lstrip().startswith("#")]
        self.assertEqual([ln for ln in code if ln.startswith("let ")],
                         ["let linear_0 = linear(x, t0_weight, t0_bias)"])
        self.assertEqual(r.keys, ["0.bias", "0.weight"])

    def test_cli(self):
        env = dict(os.environ, PYTHONPATH=str(ROOT / "python") + os.pathsep + str(HERE))
        out = self.d / "cli.attn"
        p = subprocess.run([sys.executable, "-m", "attnc.export", "cli_spec:mha", "-o", str(out)],
                           env=env, capture_output=True, text=True, cwd=str(self.d))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("wrote", p.stdout)
        self.assertNotIn("RuntimeWarning", p.stderr)
        self.assertEqual(out.read_text().replace("model cli", "model mha"),
                         (HERE / "mha" / "model.attn").read_text())
        self.assertTrue((self.d / "cli.safetensors").exists())
        c = subprocess.run([ATTNC, str(out), "--emit=stats", "-o", str(self.d / "s.stats")],
                           capture_output=True, text=True)
        self.assertEqual(c.returncode, 0, c.stderr)
        p = subprocess.run([sys.executable, "-m", "attnc.export", "cli_spec:not_a_pair", "-o",
                            str(self.d / "x.attn")], env=env, capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("attnc.export: error: cli_spec:not_a_pair must return (module, args)", p.stderr)
        self.assertFalse((self.d / "x.attn").exists())
        p = subprocess.run([sys.executable, "-m", "attnc.export", "cli_spec:mha", "-o",
                            str(self.d / "y.attn"), "--dynamic", "x=0:B,1:T", "--name", "named"],
                           env=env, capture_output=True, text=True, cwd=str(self.d))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("model named\n", (self.d / "y.attn").read_text())

    def test_callable_module(self):
        # attnc.export is both the function and the module (attnc.export.ExportError)
        import attnc.export as mod
        self.assertIs(attnc.export, mod)
        self.assertTrue(callable(attnc.export))
        from attnc.export import export
        self.assertTrue(callable(export))


class _Result(unittest.TextTestResult):
    """Also prints one 'RESULT name status' line per test, for export_torch.sh."""

    def addSuccess(self, test):
        super().addSuccess(test)
        print("RESULT %s ok" % test._testMethodName, flush=True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        print("RESULT %s FAIL" % test._testMethodName, flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        print("RESULT %s ERROR" % test._testMethodName, flush=True)


if __name__ == "__main__":
    unittest.main(testRunner=unittest.TextTestRunner(resultclass=_Result, verbosity=2))
