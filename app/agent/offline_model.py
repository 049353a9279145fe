"""A deterministic planner behind LangChain's chat-model interface.

It reads the latest request (app.agent.reading), maps it to tool calls with fixed rules,
looks at the tool results that come back (a budget check that fits is followed by the
queueing it was for; a list of jobs found for "cancel the failed jobs" by one bulk call
naming them), and then answers with them. No key, no weights, and the same input always
gives the same plan, so the whole agent loop (create_agent, tool calls, tool messages,
approvals) runs and is tested offline.

Three promises, checked by the request corpus in tests/agent/:
- every word that matters is used or named: a quantity it cannot map ("2 epochs") is said
  back, and nothing that spends or destroys is proposed while one is;
- a negated action ("don't cancel job 5") is never proposed;
- a question ("can I afford ...", "what if I cancel ...") is answered by checking and
  reading, never by spending or destroying.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from app.agent.reading import Reading, read, unfamiliar_words

PRIORITIES = ("urgent", "normal", "background")
MAX_BATCH = 100  # jobs per request; more is refused
MAX_SWEEP = 200
CANCELLABLE = ("queued", "dispatching", "waiting", "running")
RESUMABLE = ("failed", "cancelled", "budget_exhausted")

HELP = ("I did not understand that. I can: queue training jobs (\"train a 64-host scheduler "
        "for 2M steps with a $5 budget\", \"queue 20 configs urgently\", \"a 64-host job "
        "tonight off-peak\"), run a hyperparameter sweep (\"queue 50 hyperparameter configs, max "
        "$0.50\"), check what a job would cost (\"can I afford ...?\"), show the status, the "
        "dashboard, budgets, a job's logs or ETA, list jobs, explain a job (\"why is job 12 "
        "still waiting?\"), cancel or resume jobs (\"retry the failed jobs\"), move a job to "
        "the front, pause or resume the queue, forecast and report costs, suggest savings, "
        "set a budget, and compare runs or say which was best.")


def _call(name: str, args: dict[str, Any], salt: str, index: int = 0) -> dict[str, Any]:
    # Deterministic ids, unique within a conversation (the salt includes its length).
    digest = hashlib.sha1(f"{salt}:{index}:{name}".encode()).hexdigest()[:12]
    return {"name": name, "args": args, "id": f"call_{digest}", "type": "tool_call"}


@dataclass
class Decision:
    """What the planner makes of a request: tool calls (their names and arguments), or an
    answer without any; ``then`` names the second step a first step's results may lead to;
    ``notes`` are said before the tools' answers."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    answer: str | None = None
    then: str | None = None
    notes: list[str] = field(default_factory=list)


Rule = Callable[[Reading], "Decision | None"]
# Families of rules that spend or destroy: a negation or a question keeps them from acting.
ACTS = {"cancel", "resume", "queue", "pause", "front", "start"}
# Words that ask for the status in their own right (not "queue" in "pause the queue").
STATUS_WORDS = r"\b(?:status|overview|health|alerts?|dashboard|summary|summari[sz]e)\b"


def _say(text: str) -> Decision:
    return Decision(answer=text)


def _unclear(words: Sequence[str], why: str = "") -> str:
    quoted = ", ".join(f"'{w}'" for w in words)
    return f"I did not understand {quoted}{': ' + why if why else ''}, so I did nothing."


def _unit_hint(r: Reading) -> str:
    if any(re.search(r"epoch|episode|iteration|update|batch", w) for w in r.unknown):
        return "Oppen trains for a number of steps (say e.g. '2M steps')"
    if any(re.search(r"tpu", w) for w in r.unknown):
        return "jobs ask for GPUs, CPUs and memory"
    if any(not re.search(r"[a-z]", w) for w in r.unknown):
        return "say what the number counts (steps, hosts, GPUs, CPUs, GB, dollars)"
    return "say it in steps, hosts, GPUs, CPUs, GB of memory, dollars or a start time"


# --- jobs: one, several, or a selection ----------------------------------------------------

def _ask_which(verb: str, example: str) -> Decision:
    return _say(f"Which job should I {verb}? Say e.g. '{example}'.")


def _selection(r: Reading, then: str, states: tuple[str, ...]) -> Decision | None:
    """'the failed jobs', 'all queued jobs', 'the last 3 jobs': found first, then acted on
    in one call that names them (so its approval lists them)."""
    if r.last is not None:
        args: dict[str, Any] = {"last": r.last}
        if r.state:
            args["state"] = r.state
        return Decision([("list_jobs", args)], then=then)
    state = r.state
    if state is None and r.has(r"\b(?:all|every|everything)\b"):
        if r.has(r"\b(?:all|every)\s+(?:the\s+)?(?:jobs?|runs?)\b|\beverything\b"):
            state = states[0] if len(states) == 1 else None
            if state is None:
                return Decision([("list_jobs", {"limit": MAX_BATCH})], then=then)
    if state is None or state not in states:
        if state is not None:
            return _say(f"{state.capitalize()} jobs cannot be "
                        f"{'cancelled' if then == 'cancel' else 'resumed'}.")
        return None
    return Decision([("list_jobs", {"state": state, "limit": MAX_BATCH})], then=then)


def _on_jobs(r: Reading, verb: str, states: tuple[str, ...], example: str) -> Decision:
    """``verb`` (cancel or resume) on the jobs named, or on a selection of them."""
    if r.job_ids:
        if len(r.job_ids) == 1:
            return Decision([(f"{verb}_job", {"job_id": r.job_ids[0]})])
        return Decision([(f"{verb}_jobs", {"job_ids": r.job_ids[:MAX_BATCH]})])
    found = _selection(r, verb, states)
    return found or _ask_which(verb, example)


def _cancel(r: Reading) -> Decision | None:
    if not r.has(r"\b(?:cancel|cancell?ing|kill|abort|terminate)\b|\bstop\s+(?:job|run|#|the\s+"
                 r"(?:\w+\s+)?(?:jobs?|runs?)|all\s+(?:\w+\s+)?(?:jobs?|runs?)|\d)|"
                 r"\bdrop\s+(?:job|#)"):
        return None
    return _on_jobs(r, "cancel", ("queued", "running"), "cancel job 3")


def _resume(r: Reading) -> Decision | None:
    if not r.has(r"\b(?:retry|retries|resume|re-?run|restart|resubmit|requeue|re-queue)\b|"
                 r"\btry\b.*\bagain\b"):
        return None
    if r.has(r"\b(?:queue|admission|dispatch\w*|scheduling)\b") and not r.job_ids \
            and r.state is None:
        return None  # resuming the queue, not a job
    return _on_jobs(r, "resume", ("failed", "cancelled"), "resume job 5")


def _admission(r: Reading) -> Decision | None:
    target = r"(?:the\s+)?(?:queue|admission|admissions|dispatch\w*|scheduling|new jobs|launches)"
    if r.has(rf"\b(?:unpause|un-pause|unfreeze)\b|\b(?:resume|restart|continue|reopen)\s+"
             rf"{target}\b|\bstart admitting\b|\b(?:let|make)\s+the\s+queue\s+(?:run|go|move)\b|"
             r"\bqueue\s+(?:run\w*|go\w*)\s+again\b"):
        return Decision([("resume_admission", {})])
    if r.has(rf"\b(?:pause|freeze|suspend|halt|hold)\s+{target}\b|\bstop\s+(?:admitting|"
             r"dispatching|launching|starting new)\b|\bpause (?:everything|all)\b|"
             rf"\b(?:put|place)\s+{target}\s+on hold\b"):
        return Decision([("pause_admission", {})])
    if r.has(r"\bpause\b"):
        return Decision([("pause_admission", {})])
    return None


def _stop_everything(r: Reading) -> Decision | None:
    if r.has(r"\b(?:stop|halt|kill|shut down|shutdown)\s+(?:it all|everything|all|the world)\b"
             r"(?!\s+(?:\w+\s+)?(?:jobs?|runs?))"):
        words = re.search(r"\b(?:stop|halt|kill|shut down|shutdown)\s+\w+(?:\s+all)?", r.text)
        return _say(_unclear([words.group(0) if words else "stop everything"],
                             "say 'pause the queue' to admit nothing new, or 'cancel all "
                             "running jobs' to stop what runs"))
    if r.has(r"\b(?:delete|drop|wipe|erase|truncate|destroy)\b.*\b(?:database|tables?|db|"
             r"data|history|everything|all)\b"):
        return _say("I cannot do that: Oppen's agent never deletes data. It can cancel jobs or "
                    "pause the queue.")
    return None


def _front(r: Reading) -> Decision | None:
    if not r.has(r"\b(?:front|top|head)\s+of\s+the\s+(?:queue|line)\b|\bto\s+the\s+(?:front|top|"
                 r"head)\b|\bjump the (?:queue|line)\b|\bnext in line\b|\b(?:put|make)\s+"
                 r"(?:job\s*)?#?\d+\s+first\b|\bmove\s+(?:job\s*)?#?\d+\s+(?:up|first)\b|"
                 r"\bgo(?:es)?\s+first\b"):
        return None
    if not r.job_ids:
        return _ask_which("move to the front", "move job 40 to the front")
    return Decision([("move_to_front", {"job_id": r.job_ids[0]})])


def _start_now(r: Reading) -> Decision | None:
    if not r.job_ids or not r.has(
            r"\b(?:start|run|launch)\b.*\b(?:now|immediately|right away|straight away)\b|"
            r"\bprioriti[sz]e\b|\bbump\b|\bexpedite\b|\bmake\b.*\burgent\b|\bhurry\b"):
        return None
    return Decision([("start_now", {"job_id": r.job_ids[0]})])


def _one_job(r: Reading, pattern: str, tool: str, verb: str, example: str,
             extra: dict[str, Any] | None = None) -> Decision | None:
    if not r.has(pattern):
        return None
    if not r.job_ids:
        return _ask_which(verb, example) if r.has(r"\b(?:it|this job|that job|the job)\b") \
            or not r.has(r"\bjobs\b") else None
    return Decision([(tool, {"job_id": r.job_ids[0], **(extra or {})})])


def _logs(r: Reading) -> Decision | None:
    extra = {"lines": r.lines} if r.lines else None
    return _one_job(r, r"\blogs?\b|\boutput\b|\btail\b|\bstdout\b|\bstderr\b|\bconsole\b|"
                       r"\bprint(?:ed|s)?\b|\bwrote\b",
                    "job_logs", "show the logs of", "show the logs of job 3", extra)


def _eta(r: Reading) -> Decision | None:
    return _one_job(r, r"\beta\b|\bhow much longer\b|\bwhen will\b.*\b(?:start|finish|end|be done|complete|run)\b|"
                       r"\bhow long (?:until|till|before|will|does|left)\b|\btime left\b|"
                       r"\bwhen (?:does|is)\b.*\b(?:start|finish|done|due)\b|"
                       r"\bwhen'?s\b.*\b(?:start\w*|finish\w*|done|due|complete\w*|ready)\b",
                    "job_eta", "give the ETA of", "what is the ETA of job 30")


def _best(r: Reading) -> Decision | None:
    if not r.has(r"\bbest\b|\btop\s+\d+\s+(?:runs?|configs?|jobs?|polic\w+)\b|\bwinning\b|"
                 r"\bwhich (?:run|config\w*|job|policy) (?:was|is|did|performed) (?:best|better"
                 r"|well)\b|\brank\w*\b"):
        return None
    if r.has(r"\bbest way\b|\bbest practice"):
        return None
    m = re.search(r"\btop\s+(\d+)\b", r.text)
    return Decision([("best_runs", {"limit": int(m.group(1))} if m else {})])


def _sweep_results(r: Reading) -> Decision | None:
    """How a sweep is doing, or what it found: read, never a new sweep."""
    if not r.has(r"\bsweeps?\b|\bstud(?:y|ies)\b|\bsearch\b"):
        return None
    if not r.has(r"\bresults?\b|\bprogress\b|\bstatus\b|\bdoing\b|\bgoing\b|\bfound\b|"
                 r"\bshow\b|\bhow (?:is|are|far)\b|\bfinished\b|\bdone\b"):
        return None
    if r.has(r"\bcost\w*\b|\bafford\b|\bhow much\b"):
        return None
    named = re.search(r"\bsweep\s+['\"]?([a-z0-9][\w.-]*)", r.text)
    ignore = {"results", "result", "progress", "status", "doing", "going", "is", "done", "so",
              "has", "have", "finished", "found"}
    args = {"sweep": named.group(1)} if named and named.group(1) not in ignore else {}
    return Decision([("sweep_results", args)])


def _results(r: Reading) -> Decision | None:
    ids = r.job_ids
    if r.has(r"\bcompare\b|\bversus\b|\bvs\.?\b|\bside by side\b|\bdifference between\b"):
        if len(ids) >= 2:
            return Decision([("compare_runs", {"job_ids": ids[:20]})])
        if r.has(r"\bruns?\b|\bjobs?\b"):
            return _say("Which runs should I compare? Say e.g. 'compare runs 1 and 2'.")
        return None
    if not ids:
        if r.has(r"\b(?:why|waiting|pending|stuck)\b") and r.has(r"\b(?:it|this job|that job|"
                                                              r"my job|the job)\b"):
            return _say("Which job? Say e.g. 'why is job 12 still waiting?'.")
        return None
    job = {"job_id": ids[0]}
    if r.has(r"\b(?:evaluat\w*|heuristics?|baselines?|how (?:good|well)|how did it do|"
             r"how did (?:job|it)\b.*\bdo)\b"):
        return Decision([("evaluate_policy", job)])
    if r.has(r"\b(?:metrics?|reward|return|loss|sps|learning curve)\b"):
        return Decision([("run_metrics", job)])
    if r.has(r"\b(?:forecast|cost|costs|how much|price|spend|bill)\b"):
        return Decision([("forecast_job_cost", job)])
    if r.has(r"\b(?:why|waiting|pending|stuck|not (?:yet )?(?:running|started)|hasn'?t started)"
             r"\b"):
        return Decision([("job_details", job)])
    if r.has(r"\b(?:show|detail|details|about|how is|how's|status|what about|explain|describe|"
             r"info|information|look|check|happened|happening|doing|progress|state|going on|up with)\b"):
        return Decision([("job_details", job)])
    return None


# --- budgets and money ----------------------------------------------------------------------

def _savings(r: Reading) -> Decision | None:
    if not (r.has(r"\b(?:reduce|cut|lower|save|saving|savings|cheaper|optimi[sz]e|less)\b")
            and r.has(r"\b(?:cost|costs|spend|spending|money|bill|cheaper|savings?)\b")):
        return None
    return Decision([("recommend_savings", {"job_id": r.job_ids[0]} if r.job_ids else {})])


def _set_budget(r: Reading) -> Decision | None:
    if not r.has(r"\b(?:set|create|make|add|limit|change|raise|lower|give)\b.*\bbudget\b|"
                 r"\bbudget\b.*\b(?:of|to)\s+\$?\d|\bbudget for (?:team|project)\b") \
            or r.has(r"\b(?:train|queue|submit)\b"):
        return None
    if r.dollars is None:
        return _say("How much should the budget allow? Say e.g. 'set a $50 monthly budget for "
                    "team ml'.")
    period = "weekly" if r.has(r"\bweek") else "monthly"
    team = re.search(r"\bteam\s+([\w.-]+)", r.text)
    project = re.search(r"\bproject\s+([\w.-]+)", r.text)
    args: dict[str, Any] = {"limit_usd": r.dollars, "period": period}
    if r.has(r"\bsoft\b"):
        args["hard"] = False
    if team:
        args.update(scope="team", scope_value=team.group(1), name=f"{team.group(1)}-{period}")
    elif project:
        args.update(scope="project", scope_value=project.group(1),
                    name=f"{project.group(1)}-{period}")
    else:
        args["name"] = f"global-{period}"
    return Decision([("set_budget", args)])


def _budgets(r: Reading) -> Decision | None:
    if r.has(r"\bbudgets?\b") and not r.has(r"\b(?:train|queue|submit|jobs?|runs?|afford|fit)\b") \
            and r.dollars is None:
        return Decision([("list_budgets", {})])
    if r.has(r"\b(?:money|budget) (?:do i have )?left\b|\bremaining budget\b"):
        return Decision([("list_budgets", {})])
    return None


def _report(r: Reading) -> Decision | None:
    if not r.has(r"\b(?:report|spent|spend|spending|expenses|bill|costs? so far|cost breakdown|"
                 r"costs? (?:by|per))\b") or r.job_ids:
        return None
    args: dict[str, Any] = {}
    if r.has(r"\btoday\b|\bday\b|\bdaily\b"):
        args["period"] = "day"
    elif r.has(r"\bmonth\w*\b"):
        args["period"] = "month"
    elif r.has(r"\bweek\w*\b"):
        args["period"] = "week"
    for group in ("project", "priority", "status", "team"):
        if r.has(rf"\b(?:by|per)\s+{group}"):
            args["group_by"] = group
    return Decision([("cost_report", args)])


# --- spending: training jobs and sweeps -----------------------------------------------------

def _spend_args(r: Reading) -> dict[str, Any]:
    args = r.training_args()
    if r.count and r.count > 1:
        args["count"] = r.count
    return args


def _training(r: Reading, args: dict[str, Any], cap: str | None,
              question: bool) -> Decision:
    count = args.get("count", 1)
    if count > MAX_BATCH:
        return _say(f"That is {count:,} jobs; I queue at most {MAX_BATCH} per request.")
    if question or cap is not None:
        check = dict(args)
        if cap is not None:
            check["max_cost_usd"] = cap
        return Decision([("check_budget", check)], then=None if question else "queue")
    if count > 1:
        return Decision([("submit_batch", args)])
    return Decision([("queue_training_job", args)])


def _sweep(r: Reading) -> Decision | None:
    if not r.has(r"\b(?:sweep|hyper[- ]?parameters?|hparams?|grid search|random search|tune|"
                 r"tuning|parameter search)\b"):
        return None
    if r.count is not None and r.count > MAX_SWEEP:
        return _say(f"That is {r.count:,} configs; a sweep here queues at most {MAX_SWEEP}.")
    if r.has(r"\bgrid\b"):
        return _say("Which values should the grid cover? Say e.g. 'grid sweep lr 1e-4,3e-4 and "
                    "ent_coef 0.01,0.02' — or ask for a random sweep.")
    if r.question:
        check = {k: v for k, v in _spend_args(r).items()}
        check.setdefault("count", 10)
        if r.dollars is not None:
            check["max_cost_usd"] = r.dollars
        return Decision([("check_budget", check)])
    args: dict[str, Any] = {}
    if r.count:
        args["n"] = r.count
    if r.has(r"\brandom\b"):
        args["method"] = "random"
    for key, value in (("max_total_usd", r.dollars), ("total_timesteps", r.steps),
                       ("num_hosts", r.hosts), ("priority", r.priority)):
        if value is not None:
            args[key] = value
    return Decision([("hyperparameter_sweep", args)])


TRAIN_VERB = r"\b(?:queue|submit|launch|start|train|trained|schedule|run|kick off|spin up|" \
             r"fire off|enqueue|create|(?:i|we) (?:queued|submitted|launched|started|ran))\b"
TRAIN_NOUN = r"\b(?:jobs?|runs?|train\w*|configs?|configurations?|schedulers?|polic(?:y|ies)|" \
             r"models?|experiments?|trials?|seeds?)\b"


def _train(r: Reading) -> Decision | None:
    stated = any(v is not None for v in (r.steps, r.hosts, r.gpus, r.start))
    if not (r.has(TRAIN_VERB) and r.has(TRAIN_NOUN)) and not r.has(r"\btrain\b") \
            and not (stated and r.has(TRAIN_NOUN)):
        return None
    if r.has(r"\b(?:status|list|show)\b") and not r.question:
        return None
    args = _spend_args(r)
    if r.has(r"\b(?:different|each|every|all (?:three|3)) priorit"):
        n = r.count or 3
        if n > MAX_BATCH:
            return _say(f"That is {n:,} jobs; I queue at most {MAX_BATCH} per request.")
        base = {k: v for k, v in args.items() if k not in ("count", "priority")}
        return Decision([("queue_training_job", {**base, "priority": PRIORITIES[i % 3]})
                         for i in range(n)])
    return _training(r, args, r.dollars, r.question)


def _check(r: Reading) -> Decision | None:
    if not r.has(r"\b(?:afford|fit|fits|within (?:the |my |our )?budget|check (?:the |my )?budget"
                 r"|how much would|what would it cost|how much does it cost|price of|estimate|"
                 r"cost of|how expensive|budget for|enough budget|room in the budget)\b"):
        return None
    if r.job_ids:
        return None
    args = _spend_args(r)
    if r.dollars is not None:
        args["max_cost_usd"] = r.dollars
    return Decision([("check_budget", args)])


# --- reading the whole picture ---------------------------------------------------------------

def _list(r: Reading) -> Decision | None:
    if not r.has(r"\blist\b|\bwhich jobs\b|\bwhat jobs\b|\bshow (?:me )?(?:the |all |my )?"
                 r"(?:\w+ )?(?:jobs|runs)\b|\bshow (?:me )?everything that\b|\bwhat'?s (?:still )?"
                 r"(?:queued|running|waiting|pending|failed)\b|\b(?:jobs|runs) (?:are|that)\b|\bhow many jobs\b|"
                 r"\bthe last \d* ?(?:jobs?|runs?)\b"):
        return None
    args: dict[str, Any] = {}
    if r.state:
        args["state"] = r.state
    if r.last is not None:
        args["last"] = r.last
    return Decision([("list_jobs", args)])


def _status(r: Reading) -> Decision | None:
    if r.has(r"\bdashboard\b"):
        return Decision([("dashboard", {})])
    if r.has(r"\b(?:status|overview|health|alerts?|everything|going on|happening|how are things|"
             r"what'?s up|summary|summari[sz]e|state of|running|queue|paused|problems?|issues?|"
             r"errors?|trouble|wrong)\b"):
        return Decision([("system_status", {})])
    return None


RULES: tuple[tuple[str, Rule], ...] = (
    ("read", _stop_everything), ("pause", _admission), ("cancel", _cancel),
    ("resume", _resume), ("front", _front), ("start", _start_now), ("read", _logs),
    ("read", _eta), ("read", _savings), ("read", _best), ("read", _sweep_results),
    ("read", _results),
    ("queue", _set_budget), ("read", _budgets), ("read", _report), ("queue", _sweep),
    ("queue", _train), ("read", _check), ("read", _list), ("read", _status))
VERB_OF = {"cancel": "cancel", "resume": "resume", "queue": "queue anything", "pause":
           "pause or resume the queue", "front": "move", "start": "start"}


MAX_REQUEST = 2_000  # characters; a request is a sentence or two, not a document


def decide(request: str) -> Decision:
    """The planner's whole decision for a request: see the module docstring."""
    if len(request) > MAX_REQUEST:
        return Decision(answer=f"I did not understand that: the request is {len(request):,} "
                               f"characters, more than a request of {MAX_REQUEST:,}, so I did "
                               "nothing. Say it in a sentence or two.")
    r = read(request)
    notes = [f"(I read '{a}' as '{b}'.)" for a, b in r.corrections]
    declined: list[str] = []
    questioned: list[str] = []
    for family, rule in RULES:
        if questioned:
            break  # a question about acting: the facts of what it would act on, below
        found = rule(r)
        if found is None:
            continue
        generic = rule in (_status, _list)
        if generic and (r.unknown or declined or r.negated) and not r.has(STATUS_WORDS) \
                and not (rule is _list and r.state):
            continue  # "queue 2 blorps", "never pause the queue": not a status request
        if family in ACTS and family in r.negated:
            declined.append(family)
            continue
        if family in ACTS and found.calls and r.question and found.calls[0][0] != "check_budget":
            questioned.append(family)
            continue
        if found.calls and r.unknown:
            if family in ACTS or found.calls[0][0] == "check_budget":
                return Decision(answer=" ".join([*notes, _unclear(r.unknown, _unit_hint(r))]))
            notes.append(_unclear(r.unknown, _unit_hint(r)).replace(", so I did nothing",
                                                                    ", so I left it out"))
        if declined:
            notes.append(_declined(declined, r))
        if questioned:
            notes.append(_questioned(questioned))
        found.notes = notes + found.notes
        if found.answer is not None and notes:
            found.answer = " ".join([*notes, found.answer])
        return found
    if questioned:
        target = [("job_details", {"job_id": r.job_ids[0]})] if r.job_ids \
            else [("system_status", {})]
        return Decision(target, notes=[*notes, _questioned(questioned)])
    if declined or r.negated & ACTS:
        return Decision(answer=" ".join([*notes, _declined(declined or sorted(r.negated & ACTS),
                                                            r)]))
    if r.unknown:
        return Decision(answer=" ".join([*notes, _unclear(r.unknown, _unit_hint(r))]))
    strangers = unfamiliar_words(r.text)
    if strangers:
        return Decision(answer=" ".join([*notes, HELP.replace(
            "I did not understand that.",
            f"I did not understand {', '.join(repr(w) for w in strangers[:4])}.")]))
    return Decision(answer=" ".join([*notes, HELP]))


def _declined(families: list[str], r: Reading) -> str:
    what = " or ".join(dict.fromkeys(VERB_OF[f] for f in families))
    jobs = f" job{'s' if len(r.job_ids) > 1 else ''} {', '.join(map(str, r.job_ids))}" \
        if r.job_ids and "queue" not in families else ""
    return f"As you asked, I will not {what}{jobs}."


def _questioned(families: list[str]) -> str:
    return ("That was a question, so I changed nothing; say it as a request (e.g. 'cancel job "
            "5') to act.")


def plan(request: str, available: set[str], salt: str = "") -> list[dict[str, Any]] | str:
    """Tool calls for a request, or a direct answer (a question back, or help)."""
    decision = decide(request)
    if not decision.calls:
        return decision.answer or HELP
    missing = sorted({name for name, _ in decision.calls} - available)
    if missing:
        return f"I cannot do that here: no {', '.join(missing)} tool is available."
    salt = f"{salt}:{request}"
    return [_call(name, args, salt, i) for i, (name, args) in enumerate(decision.calls)]


def follow_up(request: str, calls: list[dict[str, Any]], results: list[ToolMessage],
              available: set[str], salt: str) -> list[dict[str, Any]] | str | None:
    """A second step, when the first asked for one: a budget check made on the way to
    queueing queues once it says it fits; jobs found for a bulk cancel or resume are acted
    on in one call that names them."""
    decision = decide(request)
    if decision.then is None or len(calls) != 1 or len(results) != 1 \
            or calls[0]["name"] != decision.calls[0][0]:
        return None
    found = results[0].artifact
    if not isinstance(found, dict):
        return None
    if decision.then == "queue":
        if not found.get("fits"):
            return None
        args = {k: v for k, v in calls[0]["args"].items() if k != "max_cost_usd"}
        tool = "submit_batch" if args.get("count", 1) > 1 else "queue_training_job"
        return [_call(tool, args, salt)] if tool in available else None
    wanted = CANCELLABLE if decision.then == "cancel" else RESUMABLE
    ids = [j["id"] for j in found.get("jobs", []) if j.get("state") in wanted]
    if not ids:
        verb = "cancel" if decision.then == "cancel" else "resume"
        return f"None of those jobs can be {verb + 'led' if verb == 'cancel' else 'resumed'}."
    if len(ids) == 1:
        tool, args = f"{decision.then}_job", {"job_id": ids[0]}
    else:
        tool, args = f"{decision.then}_jobs", {"job_ids": ids}
    return [_call(tool, args, salt)] if tool in available else None


class OfflineChatModel(BaseChatModel):
    """Deterministic, offline stand-in for an LLM that supports tool calling."""

    @property
    def _llm_type(self) -> str:
        return "oppen-offline-planner"

    def bind_tools(self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
                   *, tool_choice: str | None = None,
                   **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=formatted, **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:
        available = {t["function"]["name"] for t in kwargs.get("tools", [])}
        last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)),
                         default=-1)
        turn = messages[last_human + 1:]
        results = [m for m in turn if isinstance(m, ToolMessage)]
        if last_human < 0:
            message = AIMessage(content=HELP)
        elif results:
            request = str(messages[last_human].content)
            asked = [c for m in turn if isinstance(m, AIMessage) for c in m.tool_calls]
            more = follow_up(request, asked, results, available, salt=str(len(messages)))
            if isinstance(more, list):
                message = AIMessage(content="", tool_calls=more)
            else:
                said = [*decide(request).notes, *(str(r.content) for r in results)]
                if isinstance(more, str):
                    said.append(more)
                message = AIMessage(content=" ".join(said))
        else:
            decided = plan(str(messages[last_human].content), available, salt=str(len(messages)))
            message = (AIMessage(content=decided) if isinstance(decided, str)
                       else AIMessage(content="", tool_calls=decided))
        return ChatResult(generations=[ChatGeneration(message=message)])
