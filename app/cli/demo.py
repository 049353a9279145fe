"""`oppen demo`: the whole path on embedded defaults, through the agent."""

from __future__ import annotations

import time

from rich.console import Console

from app.agent.agent import Agent
from app.api.operations import LocalOperations
from app.dashboard.data import gather
from app.dashboard.render import render
from app.services import Services


def run_demo(services: Services, console: Console, timesteps: int = 2048) -> bool:
    start = time.monotonic()
    console.rule("Oppen demo")
    console.print(f"home: {services.settings.resolved_home}")
    agent = Agent(LocalOperations(services), services.settings.llm)
    request = f"Queue three training jobs with different priorities, {timesteps} steps each"
    console.print(f"[bold]you>[/] {request}")
    turn = agent.ask(request, approve=lambda _req: True)  # the demo approves its own plan
    console.print(f"[bold]oppen>[/] {turn.answer}")
    demo_ids = [r["data"]["id"] for r in turn.tool_results if r["data"]]
    if len(demo_ids) != 3:
        console.print("[red]the agent did not queue three jobs[/]")
        return False

    dispatcher = services.dispatcher()

    def progress(report) -> None:  # type: ignore[no-untyped-def]
        for job_id in report.launched:
            console.print(f"dispatcher: launched job {job_id}")
        for job_id, state in report.finished:
            console.print(f"dispatcher: job {job_id} {state}")

    dispatcher.run(services.settings.dispatch_interval_s, exit_when_idle=True, on_tick=progress)
    console.print("[bold]you>[/] how is the queue?")
    console.print(f"[bold]oppen>[/] {agent.ask('What is the queue status?', lambda _r: False).answer}")
    render(gather(services), console)
    data = {r.id: r for r in gather(services, recent=50).recent}
    ok = all(data.get(i) is not None and data[i].state == "succeeded" for i in demo_ids)
    console.print(f"demo {'finished' if ok else 'FAILED'} in {time.monotonic() - start:.0f}s")
    return ok
