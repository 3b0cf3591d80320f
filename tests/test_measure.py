"""The CPU measurement environment: denormals flushed on every thread torch computes on."""

import subprocess
import sys
import textwrap


def test_flush_denormals_reaches_the_worker_threads():
    # In a fresh process: the flag is per thread and would leak into other tests here.
    code = textwrap.dedent("""
        import torch
        from rnnbench.measure import denormals_flushed_everywhere, flush_denormals
        torch.set_num_threads(2)
        before = denormals_flushed_everywhere()
        torch.set_flush_denormal(True)
        calling_thread_only = denormals_flushed_everywhere()
        print(
            before, calling_thread_only, flush_denormals(), denormals_flushed_everywhere(), sep="|"
        )
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    before, calling_thread_only, result, after = out.stdout.strip().split("|")
    assert before == "False"  # denormals survive by default
    assert calling_thread_only == "False"  # torch.set_flush_denormal misses the workers
    assert result == "all threads" and after == "True"
