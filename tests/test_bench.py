"""The GPU check's reduced CPU mode runs in CI, so that the script a CUDA machine runs cannot rot."""
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_gpu_check_cpu_mode():
    p = subprocess.run([sys.executable, str(ROOT/"bench"/"gpu_check.py"), "--cpu"], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert "FAIL" not in p.stdout, p.stdout[-3000:]
    for check in ("HVP", "tracker", "large"):   # every row of the table is there
        assert check.lower() in p.stdout.lower(), p.stdout[-3000:]
