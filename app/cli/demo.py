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
    show_what_training_buys(console)
    console.print(f"demo {'finished' if ok else 'FAILED'} in {time.monotonic() - start:.0f}s")
    return ok


def show_what_training_buys(console: Console, seed: int = 42) -> None:
    """The demo's jobs train for seconds, which teaches a policy little; the shipped place
    policy trained for 1.5M steps. Its gain over the heuristics, measured now on one seed."""
    from app.training.shipped import PLACE_POLICY, place_gain

    console.rule("What a trained scheduler buys")
    console.print(f"The jobs above trained for seconds. The shipped policy ({PLACE_POLICY}, "
                  "1.5M steps on 64 hosts where memory fills a host) against the heuristics "
                  f"on workload seed {seed}, a 1,000-job episode:")
    gain = place_gain([seed])
    if gain is None:
        console.print("(the shipped policies are not here: set OPPEN_PRETRAINED_DIR to a "
                      "checkout's pretrained/ folder)")
        return
    for name, wait in sorted(gain.waits.items(), key=lambda kv: kv[1]):
        console.print(f"  {name:>13}: mean wait {wait:,.1f} s")
    console.print(f"PPO waits {-gain.against('first_fit') * 100:.1f}% less than first-fit and "
                  f"{-gain.against('best_fit') * 100:.1f}% less than best-fit; best-fit by "
                  f"memory, the strongest rule known here, is "
                  f"{(gain.waits['ppo'] / gain.waits['best_fit_mem'] - 1) * 100:.1f}% better "
                  "still (docs/benchmarks.md has the full table).")
