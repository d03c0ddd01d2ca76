"""Worker processes end soon after the process that started them is killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from shared_data import clips_numbered


def alive(pid: int) -> bool:
    """Whether process `pid` exists and has not ended (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in "ZX"


def spawned_children(pid: int) -> list[int]:
    """The live processes that `pid` started through multiprocessing's spawn."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline and fields[0] not in "ZX":
            found.append(int(stat.parent.name))
    return found


def wait_until(condition: Callable[[], object], seconds: float) -> object:
    """The first true value of `condition()`, polled for up to `seconds`."""
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {condition}")
        time.sleep(0.1)
    return value


PARENT = """
import multiprocessing, os, sys, time
from kcnn.spawned import exit_with_parent

def work(parent, watch):
    if watch:
        exit_with_parent(parent)
    time.sleep(60)

if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(
        target=work, args=(os.getpid(), sys.argv[1] == "watch")
    )
    child.start()
    print(child.pid, flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("watch", [True, False])
def test_a_worker_that_watches_its_parent_ends_when_the_parent_is_killed(tmp_path, watch):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    arg = "watch" if watch else "no"
    parent = subprocess.Popen([sys.executable, str(script), arg], stdout=subprocess.PIPE)
    child = int(parent.stdout.readline())
    time.sleep(1.5)  # the child has started and, if it watches, is watching
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    try:
        time.sleep(2)
        assert alive(child) is not watch  # without the watch, the orphan would go on
    finally:
        if alive(child):
            subprocess.run(["kill", "-9", str(child)], check=False)


def songs_folder(tmp_path: Path) -> Path:
    """Clips 0-5 of every genre of gtzan-mini, a folder per genre."""
    folders = tmp_path / "songs"
    for clip in clips_numbered(range(6)):
        (folders / clip.parent.name).mkdir(parents=True, exist_ok=True)
        (folders / clip.parent.name / clip.name).symlink_to(clip)
    return folders


COMMANDS = {  # the final model is fitted in a second process; the benchmark has 2 workers
    "train": ["train", "--out", "model"],
    "benchmark": ["benchmark", "--out", "report", "--folds", "2", "--runs", "1", "--jobs", "2"],
}


def start_command(tmp_path: Path, name: str) -> subprocess.Popen:
    """`kcnn` running COMMANDS[name] on `songs_folder` in `tmp_path`; its stderr piped."""
    command, *options = COMMANDS[name]
    args = [command, str(songs_folder(tmp_path)), *options, "-q"]
    if name == "benchmark":
        args += ["--methods", "kcnn"]
    return subprocess.Popen(
        [sys.executable, "-m", "kcnn.cli.main", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("name", COMMANDS)
def test_killing_a_command_ends_its_worker_processes(tmp_path, name):
    run = start_command(tmp_path, name)
    try:
        workers = wait_until(lambda: spawned_children(run.pid), 120)
        time.sleep(1)
    finally:
        run.send_signal(signal.SIGKILL)
        run.communicate()
    # they end once started (importing takes seconds, more on a busy machine)
    wait_until(lambda: not any(alive(w) for w in workers), 60)


@pytest.mark.parametrize("name", COMMANDS)
def test_sigterm_ends_a_command_and_its_workers_cleanly(tmp_path, name):
    run = start_command(tmp_path, name)
    try:
        workers = wait_until(lambda: spawned_children(run.pid), 120)
        time.sleep(3)  # the workers are computing
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
    # one line, no traceback, no warning of semaphores left behind by a killed process
    assert (run.returncode, err) == (128 + signal.SIGTERM, "kcnn: terminated\n")
    assert not any(alive(w) for w in workers)
    assert not list(tmp_path.rglob("*.tmp")), "temporary files left behind"


EXITING_WORKER = """
import atexit, os, time
from kcnn.spawned import start_worker
start_worker(1, os.getppid())
atexit.register(time.sleep, 3)
atexit.register(print, "exiting", flush=True)
"""


def test_sigterm_while_a_worker_exits_lets_it_exit_quietly():
    run = subprocess.Popen(
        [sys.executable, "-c", EXITING_WORKER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stdout.readline() == "exiting\n"  # its exit callbacks are running
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=30)
    finally:
        run.kill()
    assert (run.returncode, err) == (0, "")
