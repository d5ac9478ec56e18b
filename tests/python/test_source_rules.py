"""Rules of the CUDA sources that a compiler does not check and a race would
only show now and then on the GPU machine (src/backend/cuda/pdl.cuh):

* every kernel launch goes through launch_kernel (programmatic dependent
  launch where the GPU allows it), never <<<>>>, so the rule below covers
  every kernel tessera launches;
* every __global__ kernel's first statement is pdl_enter(): a kernel that may
  start before its predecessor completes must wait for it before touching
  global memory.
"""
import re
from pathlib import Path

CUDA_SRC = Path(__file__).resolve().parents[2] / "src" / "backend" / "cuda"


def sources():
    files = sorted(p for p in CUDA_SRC.rglob("*") if p.suffix in (".cu", ".cuh") and p.name != "pdl.cuh")
    assert files, f"no CUDA sources under {CUDA_SRC}"
    return files


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def kernel_bodies(text):
    """(name, first statement) of every __global__ function in `text`."""
    out = []
    for m in re.finditer(r"__global__\b", text):
        i = m.end()
        # the parameter list: the first parenthesis after the name, past __launch_bounds__(...)
        name_end = text.index("(", i)
        while text[i:name_end].strip().endswith("__launch_bounds__"):
            depth, j = 1, name_end + 1
            while depth:
                depth += (text[j] == "(") - (text[j] == ")")
                j += 1
            i, name_end = j, text.index("(", j)
        name = re.findall(r"\w+", text[i:name_end])[-1]
        depth, j = 1, name_end + 1
        while depth:
            depth += (text[j] == "(") - (text[j] == ")")
            j += 1
        body = text.index("{", j)
        first = text[body + 1:].lstrip().split(";", 1)[0]
        out.append((name, first.strip()))
    return out


def test_no_triple_chevron_launches():
    bad = [f"{p.relative_to(CUDA_SRC)}:{n + 1}" for p in sources()
           for n, line in enumerate(strip_comments(p.read_text()).splitlines()) if "<<<" in line]
    assert not bad, "kernels launched with <<<>>> instead of launch_kernel (pdl.cuh): " + ", ".join(bad)


def test_every_kernel_begins_with_pdl_enter():
    seen, bad = 0, []
    for p in sources():
        for name, first in kernel_bodies(strip_comments(p.read_text())):
            seen += 1
            if first != "pdl_enter()":
                bad.append(f"{p.relative_to(CUDA_SRC)}: {name} begins with '{first[:60]}'")
    assert seen >= 40, f"found only {seen} kernels: the scan no longer matches the sources"
    assert not bad, "kernels that do not begin with pdl_enter(): " + "; ".join(bad)


def test_the_scan_catches_a_kernel_without_pdl_enter():
    src = """
    template <typename T>
    __global__ void __launch_bounds__(256) good(const T* x) {
      pdl_enter();
      x[0];
    }
    __global__ void bad(int* y, int n) { y[0] = n; }
    """
    assert kernel_bodies(src) == [("good", "pdl_enter()"), ("bad", "y[0] = n")]
