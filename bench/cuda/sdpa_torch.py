"""attnc's tensor-core attention vs torch SDPA (flash backend), bf16, on the
GPU: correctness and TFLOP/s side by side (see attention.sh).

    python sdpa_torch.py BUILD_DIR RUNS
"""
import statistics
import sys

import torch
import torch.nn.functional as F

import attnc

out_dir, runs = sys.argv[1], int(sys.argv[2])
dev = torch.device("cuda")
torch.manual_seed(0)


def sdpa_flash(q, k, v, causal):
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))
    except ImportError:  # older torch
        with torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False, enable_mem_efficient=False):
            return F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal))


def timed(fn):
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    fn()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) * 1e-3


unfused = {}
print("| B | H | T | E | causal | attnc ms | torch ms | attnc TFLOP/s | torch TFLOP/s | attnc / torch speed "
      "| max abs err vs f32 (attnc) | (torch) | attnc vs torch max abs |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (B, H, T, E) in [(4, 16, 4096, 128), (4, 16, 1024, 128), (4, 16, 4096, 64)]:
    for causal in (0, 1):
        m = attnc.Model("%s/flash_e%d_c%d.so" % (out_dir, E, causal), device=0)
        q, k, v = (torch.randn(B, H, T, E, device=dev, dtype=torch.bfloat16) for _ in range(3))
        o = torch.full_like(q, float("nan"))
        stream = torch.cuda.current_stream().cuda_stream

        def run_attnc():
            m.run_device({"q": q, "k": k, "v": v}, {"o": o}, stream=stream)

        run_attnc()
        ref = sdpa_flash(q, k, v, causal)
        gold = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=bool(causal))
        torch.cuda.synchronize()
        assert not torch.isnan(o).any(), "attnc left NaN in the output"
        err_a = (o.float() - gold).abs().max().item()
        err_t = (ref.float() - gold).abs().max().item()
        diff = (o.float() - ref.float()).abs().max().item()
        for _ in range(3):  # warm up both
            run_attnc()
            sdpa_flash(q, k, v, causal)
        ta, tt = [], []
        for _ in range(runs):  # alternating
            ta.append(timed(run_attnc))
            tt.append(timed(lambda: sdpa_flash(q, k, v, causal)))
        a, t = statistics.median(ta), statistics.median(tt)
        flops = 4.0 * B * H * T * T * E / (2 if causal else 1)
        print("| %d | %d | %d | %d | %d | %.3f | %.3f | %.1f | %.1f | %.2fx | %.2e | %.2e | %.2e |"
              % (B, H, T, E, causal, a * 1e3, t * 1e3, flops / a / 1e12, flops / t / 1e12, t / a, err_a, err_t, diff))
        unfused[(B, H, T, E, causal)] = (m, q, k, v, a, err_a, flops)
        ok = err_a <= 2 * err_t + 1e-2
        if not ok:
            print("\n**attnc's error exceeds the bf16 tolerance (2 x torch's + 1e-2)**")

print()
print("## attnc fused vs --no-fuse (same inputs; unfused keeps the T x T scores in GPU memory)")
print()
print("| B | H | T | E | causal | fused ms | unfused ms | fused / unfused speed | unfused max abs err vs f32 | score bytes (unfused) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (B, H, T, E, causal), (m, q, k, v, a, err_a, flops) in unfused.items():
    u = attnc.Model("%s/flash_e%d_c%d_unfused.so" % (out_dir, E, causal), device=0)
    o2 = torch.full_like(q, float("nan"))
    stream = torch.cuda.current_stream().cuda_stream
    run_u = lambda: u.run_device({"q": q, "k": k, "v": v}, {"o": o2}, stream=stream)
    run_u()
    gold = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=bool(causal))
    torch.cuda.synchronize()
    err_u = (o2.float() - gold).abs().max().item()
    tu = statistics.median([timed(run_u) for _ in range(max(3, runs // 5))])
    print("| %d | %d | %d | %d | %d | %.3f | %.3f | %.2fx | %.2e | %.2f GiB |"
          % (B, H, T, E, causal, a * 1e3, tu * 1e3, tu / a, err_u, 2.0 * B * H * T * T / 2**30))
    u.close()
    m.close()
