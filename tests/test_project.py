"""Project rules that a later change could break: README commands, Spaces front matter, layering."""

import re
import subprocess
import sys

from tests.conftest import HANG_GUARD_S, ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def front_matter() -> dict:
    assert README.startswith("---\n"), "README.md must begin with the Spaces front matter"
    block = README.split("---\n", 2)[1]
    return dict(line.split(": ", 1) for line in block.strip().splitlines())


ZEROGPU_PYTHONS = ("3.10.13",)  # huggingface.co/docs/hub/spaces-zerogpu, "Supported Versions"


def pinned(package: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith(package + "=="):
            return line.split("==", 1)[1].split(";", 1)[0].strip()
    raise AssertionError(f"{package} is not pinned in requirements.txt")


def test_spaces_front_matter():
    meta = front_matter()
    for key in ("title", "emoji", "sdk", "sdk_version", "app_file", "python_version", "short_description", "license"):
        assert meta.get(key), f"front matter lacks {key}"
    assert meta["sdk"] == "gradio"
    assert meta["sdk_version"] == pinned("gradio")
    assert (ROOT / meta["app_file"]).is_file()
    assert meta["python_version"].strip('"') in ZEROGPU_PYTHONS
    assert len(meta["short_description"]) <= 60  # the Hub's limit


def test_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = re.findall(r"^pip install (?:--no-compile )?-r requirements[^\n]*$", README, flags=re.M)
    assert commands == [
        "pip install -r requirements.txt && python app.py",
        "pip install --no-compile -r requirements-dev.txt && pip install --no-deps d2l==1.0.3 && python -m pytest",
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "grep -m1 -E '^pip install --no-compile -r requirements-dev\\.txt' README.md" in ci


def test_requirements_are_exact_pins():
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "-r")):
                assert re.fullmatch(r'[A-Za-z0-9_.\-\[\]]+==[0-9][A-Za-z0-9.+]*(; python_version [<>]=? "3\.\d+")?', line), \
                    f"{name}: {line}"
    assert pinned("torch") == "2.14.1" and pinned("torchvision") == "0.29.1" and pinned("plotly") == "7.1.0"


def test_readme_screenshots_exist():
    for path in re.findall(r"\]\((docs/[^)]+\.png)\)", README):
        assert (ROOT / path).is_file(), path


def test_vision_core_imports_without_ui_packages():
    code = (
        "import sys\n"
        "for name in ('gradio', 'plotly', 'skimage', 'pandas', 'cv2', 'd2l', 'matplotlib'): sys.modules[name] = None\n"
        "import vision_core\n"
        "print(sorted(set(vision_core.__all__) - set(dir(vision_core))) or vision_core.box_iou.__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert out.returncode == 0 and out.stdout.strip() == "box_iou", out.stderr


def test_vision_core_has_no_ui_imports():
    for path in (ROOT / "vision_core").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import|from)\s+(gradio|plotly)\b", text, flags=re.M), path
