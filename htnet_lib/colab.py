"""Colab set-up, run by each notebook's first code cell after cloning the project (`runpy.run_path`, in the kernel's
own process, so that its working folder and $HTNET_DATA_DIR hold there; standard library only: htnet_lib is not
installed yet when it runs).

It installs the project's pinned dependencies except the ones Colab ships and must keep (torch, torchvision and the
Jupyter stack), installs facenet-pytorch 2.5.3 without dependencies (2.6.0 would downgrade torch, torchvision and
Pillow), replaces Colab's OpenCV with the pinned contrib build (TV-L1 flow), installs the project editable, then
downloads and verifies the authors' release and points HTNET_DATA_DIR at it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
REPOSITORY = "htnet-companion/htnet-companion"  # on GitHub: the badges of README.md and docs/ and the notebooks' clone
KEEP_COLAB = {"torch", "torchvision", "facenet-pytorch", "ipykernel", "jupyterlab", "papermill"}


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def main() -> None:
    project = tomllib.loads((HOME / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [d for d in project["optional-dependencies"]["dev"] if d.startswith("vit-pytorch")]
    wanted = [d for d in wanted if re.split(r"[\s<>=!~;\[]", d, maxsplit=1)[0].lower() not in KEEP_COLAB]
    _pip("uninstall", "-q", "-y", "opencv-python", "opencv-python-headless", "opencv-contrib-python")
    _pip("install", "-q", *wanted)
    _pip("install", "-q", "--no-deps", "facenet-pytorch==2.5.3", "-e", str(HOME))
    os.chdir(HOME)
    if str(HOME) not in sys.path:
        sys.path.insert(0, str(HOME))
    data_dir = HOME / "data" / "htnet-release"
    subprocess.run([sys.executable, "-m", "htnet_lib", "fetch", "--dest", str(data_dir)], check=True)
    os.environ["HTNET_DATA_DIR"] = str(data_dir)


if __name__ == "__main__":
    main()
