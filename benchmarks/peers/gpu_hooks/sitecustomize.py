"""Peak CUDA memory probe for the peer baselines (loaded via PYTHONPATH).

If PEERS_CUDA_MEM_OUT is set, at interpreter exit write
torch.cuda.max_memory_allocated / max_memory_reserved of this process as JSON
(only if the process imported torch and initialised CUDA). Then hand over to
any other sitecustomize further down sys.path, so nothing is shadowed.
"""

import atexit
import json
import os
import sys


def _peers_dump_cuda_mem():
    out = os.environ.get("PEERS_CUDA_MEM_OUT")
    torch = sys.modules.get("torch")
    if not out or torch is None:
        return
    try:
        if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
            return
        res = {
            "pid": os.getpid(),
            "device": torch.cuda.get_device_name(0),
            "max_memory_allocated_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
            "max_memory_reserved_mib": round(torch.cuda.max_memory_reserved() / 2**20, 1),
        }
        with open(out, "w") as f:
            json.dump(res, f)
    except Exception as e:  # noqa: BLE001 - a probe must never break the run
        sys.stderr.write(f"peers cuda-mem probe failed: {e}\n")


atexit.register(_peers_dump_cuda_mem)

_here = os.path.dirname(os.path.abspath(__file__))
for _p in sys.path:
    _cand = os.path.join(os.path.abspath(_p or "."), "sitecustomize.py")
    if os.path.dirname(_cand) != _here and os.path.isfile(_cand):
        with open(_cand) as _f:
            exec(compile(_f.read(), _cand, "exec"), {"__name__": "sitecustomize", "__file__": _cand})
        break
