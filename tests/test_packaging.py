"""The installed package is the source tree: a wheel built as the image builds it (`pip install .`, not editable)
holds every module and data file of schemas/, rules/ and streams/."""
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "rules", "streams")
DATA_SUFFIXES = {".py", ".json", ".yaml"}


def test_wheel_holds_every_module_and_data_file(tmp_path):
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
                            "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr
    [wheel] = tmp_path.glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(["git", "ls-files", *PACKAGES], capture_output=True, text=True, cwd=REPO,
                             check=True).stdout.split()
    wanted = {name for name in tracked if Path(name).suffix in DATA_SUFFIXES}
    assert any(name.startswith("rules/engine/") for name in wanted)
    assert wanted - shipped == set()
