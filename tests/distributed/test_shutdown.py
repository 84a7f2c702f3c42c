"""distributed.shutdown: the process group attnlab's command leaves at its end (a barrier,
then destroy), so no rank exits while a peer's gloo connection still talks to it (a rank
outliving its peer's connection was aborted by gloo: seen once in test_two_nodes)."""

from __future__ import annotations

import torch.distributed as dist

from attnlab.cli import main as cli_main
from attnlab.training import distributed


def test_shutdown_leaves_the_group_and_is_a_no_op_without_one(tmp_path, monkeypatch):
    distributed.shutdown()  # no group: nothing to do
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    calls = []
    monkeypatch.setattr(dist, "barrier", lambda *a, **k: calls.append("barrier"))
    distributed.shutdown(wait=False)  # after an error: no barrier (a failed peer would never reach it)
    assert not dist.is_initialized() and calls == []
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store2'}", rank=0, world_size=1)
    distributed.shutdown()
    assert not dist.is_initialized() and calls == ["barrier"]


def test_the_command_leaves_the_group_after_success_only_with_a_barrier(monkeypatch):
    seen = []
    monkeypatch.setattr(distributed, "shutdown", lambda wait=True: seen.append(wait))
    for code, wait in ((0, True), (2, False), (143, False)):
        monkeypatch.setattr(cli_main, "main", lambda code=code: code)
        assert cli_main.run() == code
        assert seen[-1] is wait
