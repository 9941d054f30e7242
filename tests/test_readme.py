"""The README's commands are the ones CI runs."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _block_after(text: str, marker: str) -> str:
    i = text.index(marker)
    m = re.search(r"```bash\n(.*?)\n```", text[i:], re.S)
    assert m, f"no bash block after {marker!r}"
    return m.group(1).strip()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    cmd = _block_after(readme, "Run the tests")
    assert "pytest" in cmd and "\n" not in cmd
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert cmd in ci_lines, f".ci/run does not run the README's test command: {cmd}"


def test_readme_test_command_installs_cpu_torch_first():
    """A plain torch requirement on a machine without torch pulls the CUDA build (GBs): the command
    must install the CPU build before the extras that need torch."""
    cmd = _block_after((ROOT / "README.md").read_text(), "Run the tests")
    torch_step = cmd.index("pip install torch==")
    assert "download.pytorch.org/whl/cpu" in cmd[torch_step:cmd.index("&&", torch_step)]
    assert torch_step < cmd.index(".[dev,train")
