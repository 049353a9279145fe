"""What a request says: every quantity and qualifier the offline planner recognises, the
verbs it negates, whether it is a question, and the words it could not map.

Reading is separate from planning so that each part is small and testable alone: the
planner (app.agent.offline_model) decides tool calls from a Reading and never looks at raw
text again. Anything a number is attached to that the reader does not know ("2 epochs",
"3 TPUs", "a few") lands in ``unknown``, so the planner can say so instead of guessing.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

UNITS: dict[str, int] = {"k": 1_000, "thousand": 1_000, "m": 1_000_000, "mil": 1_000_000,
                         "million": 1_000_000, "millions": 1_000_000, "b": 1_000_000_000,
                         "bn": 1_000_000_000, "billion": 1_000_000_000}
SMALL = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
         "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
         "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
         "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
         "seventy": 70, "eighty": 80, "ninety": 90}
SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
STATES = ("queued", "dispatching", "waiting", "running", "succeeded", "failed", "cancelled",
          "budget_exhausted", "pruned")
STATE_WORDS = {"queued": "queued", "pending": "queued", "waiting": "queued",
               "running": "running", "active": "running", "succeeded": "succeeded",
               "successful": "succeeded", "finished": "succeeded", "completed": "succeeded",
               "done": "succeeded", "failed": "failed", "failing": "failed", "broken": "failed",
               "cancelled": "cancelled", "canceled": "cancelled",
               "budget-stopped": "budget_exhausted", "pruned": "pruned"}

# Words a quantity may be counting, by what the planner does with them.
STEP_UNITS = {"steps", "step", "timesteps", "timestep"}
HOST_UNITS = {"hosts", "host", "nodes", "node", "machines", "machine", "servers", "server"}
GPU_UNITS = {"gpus", "gpu"}
CPU_UNITS = {"cpus", "cpu", "cores", "core", "vcpus", "vcpu"}
WORKER_UNITS = {"workers", "worker"}  # data-parallel training workers (num_workers)
MEMORY_UNITS = {"gb": 1024, "gib": 1024, "g": 1024, "mb": 1, "mib": 1, "tb": 1024 * 1024}
DOLLAR_UNITS = {"dollars", "dollar", "usd", "bucks"}
COUNT_UNITS = {"jobs", "job", "runs", "run", "configs", "config", "configurations",
               "configuration", "trials", "trial", "experiments", "experiment", "schedulers",
               "scheduler", "policies", "policy", "models", "model", "copies", "seeds",
               "variants", "training"}
DURATION_UNITS = {"hours": 3600, "hour": 3600, "hrs": 3600, "hr": 3600, "h": 3600,
                  "minutes": 60, "minute": 60, "mins": 60, "min": 60, "seconds": 1,
                  "second": 1, "secs": 1, "sec": 1, "s": 1, "days": 86400, "day": 86400}
# Words between a number and its unit that do not change what is counted.
FILLERS = {"more", "training", "env", "environment", "time", "simulated", "total", "extra",
           "new", "separate", "different", "identical", "ppo", "rl", "small", "short", "big",
           "large", "long", "tiny", "quick", "of", "x"}

# The words the planner acts on. A word close to one of these (and not a word itself) is read
# as it, and the answer says so.
VOCABULARY = (
    "cancel", "queue", "train", "training", "submit", "launch", "schedule", "retry", "resume",
    "rerun", "restart", "status", "logs", "log", "budget", "budgets", "dashboard", "compare",
    "hosts", "steps", "timesteps", "gpus", "cpus", "urgent", "background", "hyperparameter",
    "hyperparameters", "sweep", "evaluation", "evaluate", "forecast", "afford", "priority",
    "million", "thousand", "tonight", "tomorrow", "pause", "unpause", "front", "details",
    "metrics", "report", "spend", "spent", "spending", "failed", "queued", "running",
    "succeeded", "cancelled", "jobs", "memory", "heuristics", "estimate", "configs",
    "scheduler", "policy", "progress", "everything", "system", "overview", "please", "compare",
    "recommend", "savings", "reduce", "cheaper", "budgeted", "remaining", "hierarchical",
    "place", "pick", "spot", "experiments", "configurations", "waiting", "pending", "stuck",
    "previous", "latest", "output", "best", "ranking", "admission", "dispatcher", "host",
    "step", "gpu", "cpu", "list", "resubmit", "requeue", "terminate", "abort", "kill", "tail",
    "evaluate", "compare", "prioritize", "expedite", "freeze", "admitting", "cores", "show",
    "tell", "describe", "explain")
# Common words that are close to the vocabulary but mean something else.
NOT_TYPOS = {"stop", "stops", "step", "start", "state", "states", "stats", "stat", "task",
             "tasks", "cost", "costs", "most", "host", "post", "past", "fast", "last", "list",
             "lists", "just", "must", "jobs", "best", "rest", "test", "tests", "reset", "result",
             "results", "sure", "runs", "running", "where", "there", "their", "these", "those",
             "what", "when", "which", "while", "about", "would", "could", "should", "queues",
             "pass", "plan", "plans", "place", "price", "prices", "quite", "quiet", "timestep",
             "trains", "trained", "logged", "spends", "report", "reports", "month", "week",
             "today", "hourly", "daily", "weekly", "monthly", "front", "frontier", "track",
             "sweeps", "swept", "budget", "audit", "failing", "fails", "fail", "pending",
             "spend", "spent", "spot", "shot", "show", "shows", "showing", "shown", "slow",
             "slowdown", "tell", "team", "teams", "teach", "then", "than", "them", "they",
             "that", "this", "with", "without", "within", "your", "yours", "note", "notes",
             "node", "nodes", "mode", "modes", "code", "model", "models", "more", "mean",
             "means", "make", "made", "take", "takes", "give", "gives", "have", "here",
             "hours", "hour", "minutes", "mins", "cheap", "cheaper", "cheapest", "poor",
             "epochs", "epoch", "every", "each", "both", "once", "twice", "many", "much",
             "some", "none", "only", "also", "again", "please", "thanks", "thank", "want",
             "need", "needs", "like", "know", "tpus", "tpu", "iterations", "episodes", "batch",
             "batches", "remain", "remains", "latest", "later", "late", "long", "longer",
             "size", "sized", "hello", "hi", "hey", "joke", "funny", "weather", "number",
             "numbers", "send", "sends", "seed", "seeds", "sees", "seen", "time", "times",
             "train", "rain", "retire", "retina", "resumes", "resumed", "summary", "summarise",
             "summarize", "overall", "priorities", "prior", "order", "ordered", "move", "moves",
             "jump", "jumps", "first", "top", "finish", "finished", "finishes", "done", "does",
             "doing", "going", "guess", "anything", "nothing", "something", "run", "ran",
             "runner", "queued", "queue", "gpu", "cpu", "hosts", "scale", "stale",
             "stall", "stalled", "still", "started", "starts", "starting", "table",
             "tables", "chart", "charts", "plot", "plots", "alerts", "alert", "health",
             "healthy", "delete", "drop", "wipe", "erase", "restore", "rollback", "roll"}

# Everyday words one letter from the vocabulary ("will" / "kill"): never corrected.
COMMON_WORDS = set("""
will well wall fill till bill mill still skill hill ill pill sill kiss miss pass less loss
lose lost last least list mist most must just dust rust cast fast past vast east west best
test rest nest jest lest host post cost coat boat goat load road toad told cold hold bold
gold fold sold mold word work worm form from fork park part cart card hard yard ward warm
team tear year near dear hear bear beer deer peer seer here there where were wear gear
tell sell bell cell fell yell dell spell shell smell swell dwell step stop stay star stir
start stare store stark stack stick stock stuck struck strike string strong stream street
state stats stat status skate slate plate place plane plan clan clean clear cheap cheat
chat what that than then them they their thin this thus these those three throw through
train trains brain drain grain rain gain main pain paint point print sprint spring
queen quest quiet quite quote quick quit queue cue clue blue glue true tree free three
sleep sweep sheep steep steer sheer cheer check cheek chess guess bless dress press
price prize pride bride ride side wide hide tide time tame same game name came come home
some sum run ran rub sub hub pub cub gun bun fun sun nun tun runs guns buns puns
jobs mobs robs sobs bobs gobs hobs lobs cobs blobs snobs knobs
logs dogs fogs hogs cogs bogs jogs frogs blogs clogs
gpus cpus hosts posts costs lists tests rests nests
start starts started starting hosted posted posting listed listing tested testing
again agent agents event events eve even ever every very vary wary
about above after other otter outer order older odder under until unit units
please pleas plead lease least leash
before behind being begin began begun brain bring bright
week weak seek peek leek meek geek
month mouth north worth both moth
today toady totally
money honey monkey
plot slot spot shot shoot short sort port sport spore score scare share shore
""".split())
NEGATORS = r"(?:don'?t|do not|dont|never|no need to|not|won'?t|shouldn'?t|must not|mustn'?t)"
VERB_FAMILIES: dict[str, str] = {
    "cancel": r"cancel\w*|kill\w*|abort\w*|terminat\w*|stop\w*|delet\w*|remov\w*",
    "resume": r"retr(?:y|ied|ies|ying)|resum\w*|re-?run\w*|restart\w*|resubmit\w*",
    "queue": r"queu\w*|submit\w*|launch\w*|train\w*|start\w*|run\w*|schedul\w*|spend\w*",
    "pause": r"paus\w*|hold\w*|freez\w*",
    "front": r"mov\w*|push\w*|jump\w*",
    "start": r"start\w*|run\w*|launch\w*|bump\w*|prioriti[sz]\w*|expedit\w*|hurry",
}
QUESTION_START = re.compile(
    r"^(?:can i|could i|may i|can we|could we|how much|how many|how long|what if|what would|"
    r"what will|would|should|is it|is there|are there|am i|do i|do we|does|did|will it|"
    r"will this|what|which|when|why|who|where|how|is|are|can|could|may|should|would|will|do|"
    r"does|did|has|have|was|were)\b")
POLITE_REQUEST = re.compile(r"^(?:please\s+)?(?:can|could|would|will) you\b|^please\b")


@dataclass
class Reading:
    """One request, read. Quantities are None when the request does not give them."""

    text: str
    corrections: list[tuple[str, str]] = field(default_factory=list)
    question: bool = False
    negated: set[str] = field(default_factory=set)
    steps: int | None = None
    hosts: int | None = None
    gpus: int | None = None
    cpus: float | None = None
    workers: int | None = None
    memory_mb: int | None = None
    dollars: str | None = None
    start: str | None = None
    runtime_s: int | None = None
    priority: str | None = None
    spot: bool | None = None
    mode: str | None = None
    seed: int | None = None
    count: int | None = None
    job_ids: list[int] = field(default_factory=list)
    excluded_ids: list[int] = field(default_factory=list)
    state: str | None = None
    last: int | None = None
    lines: int | None = None
    unknown: list[str] = field(default_factory=list)

    def has(self, pattern: str) -> bool:
        return re.search(pattern, self.text) is not None

    def training_args(self) -> dict[str, Any]:
        """The queue tool's arguments this request states, and only those."""
        args: dict[str, Any] = {}
        for key, value in (("total_timesteps", self.steps), ("num_hosts", self.hosts),
                           ("gpus", self.gpus), ("cpus", self.cpus),
                           ("memory_mb", self.memory_mb), ("priority", self.priority),
                           ("spot", self.spot), ("mode", self.mode), ("seed", self.seed),
                           ("start_after", self.start), ("max_runtime_s", self.runtime_s)):
            if value is not None:
                args[key] = value
        if self.workers is not None:
            args["num_workers"] = self.workers
            # A worker needs a CPU of its own; asked for, the CPUs stay as asked.
            args.setdefault("cpus", float(self.workers))
        return args


def normalise(request: str) -> str:
    text = " ".join(request.lower().replace("’", "'").split())
    return re.sub(r"(\d)'s\b", r"\1", text).strip()  # "job 3's logs": job 3


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps of
    neighbours each count one ("cancle" is one from "cancel")."""
    rows = [list(range(len(b) + 1))] + [[i] + [0] * len(b) for i in range(1, len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[len(a)][len(b)]


@functools.lru_cache(maxsize=4096)
def closest_word(word: str) -> str | None:
    """The vocabulary word ``word`` is a typo of: one edit away (two for long words that
    start the same, "compair"); None when nothing is that close, or two words are as close."""
    if not 4 <= len(word) <= 20 or word in VOCABULARY or word in NOT_TYPOS \
            or word in COMMON_WORDS:
        return None
    allowed = 1 if len(word) <= 6 else 2
    scored = sorted((d, abs(len(v) - len(word)), v) for v in set(VOCABULARY)
                    if abs(len(v) - len(word)) <= allowed
                    and (d := edit_distance(word, v)) <= allowed
                    and (d == 1 or v[:2] == word[:2]))
    if not scored or (len(scored) > 1 and scored[1][:2] == scored[0][:2]):
        return None
    return scored[0][2]


def correct_typos(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Each word that :func:`closest_word` places, read as that word, with the corrections
    made (for the answer to say)."""
    fixed: list[tuple[str, str]] = []

    def fix(match: re.Match[str]) -> str:
        word = match.group(0)
        close = closest_word(word)
        if close is None:
            return word
        fixed.append((word, close))
        return close

    return re.sub(r"[a-z]+", fix, text), fixed


def spelled_numbers_to_digits(text: str) -> str:
    """"two million" -> "2000000", "a hundred" -> "100", "half a million" -> "500000"."""
    text = re.sub(r"\bhalf an? (million|thousand|billion)\b",
                  lambda m: str(SCALES[m.group(1)] // 2), text)
    text = re.sub(r"\ba couple of\b", "2", text)
    text = re.sub(r"\b(?:a|one) dozen\b", "12", text)
    # A number in digits and a scale word: "1.5 million", "2 thousand".
    text = re.sub(r"(?<![\w.])(\d+(?:\.\d+)?)\s+(hundred|thousand|million|billion)\b",
                  lambda m: _plain(float(m.group(1)) * SCALES[m.group(2)]), text)
    text = re.sub(r"\ban? (hundred|thousand|million|billion)\b", r"one \1", text)
    words = "|".join([*SMALL, *SCALES])
    run = re.compile(rf"\b(?:{words})(?:[\s-]+(?:and\s+)?(?:{words}))*\b")

    def value(match: re.Match[str]) -> str:
        total = current = 0
        for word in re.split(r"[\s-]+", match.group(0)):
            if word == "and":
                continue
            if word in SMALL:
                current += SMALL[word]
            elif word == "hundred":
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * SCALES[word]
                current = 0
        return str(total + current)

    return run.sub(value, text)


def _plain(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


NUMBER = r"(?<![\w.$#])(\d+(?:[,_]\d{3})*(?:\.\d+)?(?:e[+-]?\d+)?)"
SCALE = r"(?:\s*(k|thousand|mil|millions|million|m|bn|billion|b)\b)?"
QUANTITY = re.compile(NUMBER + SCALE + r"(?:\s*-?\s*((?:[a-z$%']+)(?:\s+[a-z]+){0,2}))?")


def _to_number(digits: str, scale: str | None) -> float:
    base = float(digits.replace(",", "").replace("_", ""))
    return base * UNITS.get(scale or "", 1)


def _whole(value: float) -> int | None:
    return int(value) if value == int(value) and value < 2**63 else None


def read(request: str) -> Reading:
    """Reads a request: see the module docstring."""
    text, corrections = correct_typos(normalise(request))
    text = spelled_numbers_to_digits(text)
    r = Reading(text=text, corrections=corrections)
    r.question = bool(text.endswith("?") or QUESTION_START.search(text)) \
        and not POLITE_REQUEST.search(text)
    for family, verbs in VERB_FAMILIES.items():
        if re.search(rf"\b{NEGATORS}\s+(?:\w+\s+){{0,4}}?(?:{verbs})\b", text):
            r.negated.add(family)
    _qualifiers(r)
    _job_references(r)
    _quantities(r)
    return r


def _qualifiers(r: Reading) -> None:
    t = r.text
    # Words that change what a quantity means, which no tool argument takes.
    periods = "" if re.search(r"\bbudgets?\b", t) else "|week|month"  # a budget's period
    for m in re.finditer(rf"\bper (?:host|node|machine|job|run|hour|day|gpu|cpu|core|step|"
                         rf"trial|config{periods})s?\b|\buntil (?:it )?converges?\b|"
                         r"\buntil (?:it'?s |it is )?(?:done|good|better)\b", t):
        r.unknown.append(m.group(0))
    if re.search(r"\b(?:not|isn'?t|no longer)\s+(?:so\s+)?urgent\b", t):
        r.priority = "normal"
    elif re.search(r"\burgent\w*|\basap\b|as soon as possible|\bhigh[- ]priority|"
                   r"\btop[- ]priority|\bcritical\b", t):
        r.priority = "urgent"
    elif re.search(r"\bbackground\b|\blow[- ]priority|\bno rush\b|\bwhenever\b", t):
        r.priority = "background"
    elif re.search(r"\b(?:normal|regular|default|standard)\s+priority\b|\bat normal\b", t):
        r.priority = "normal"
    if re.search(r"\b(?:no|not on|not|without|avoid)\s+(?:\w+\s+)?spot\b|on[- ]demand", t):
        r.spot = False
    elif re.search(r"\bspot\b|\bpreemptible\b|\binterruptible\b", t):
        r.spot = True
    for mode in ("hierarchical", "pick", "place"):
        if re.search(rf"\b{mode}(?:[- ]mode)?\s+(?:polic\w+|scheduler|jobs?|run|model|mode)\b|"
                     rf"\bmode\s*=?\s*{mode}\b|\b{mode} mode\b", t) \
                or (mode == "hierarchical" and re.search(r"\bhierarchical\b", t)):
            r.mode = mode
            break
    if re.search(r"\b(?:no|without|zero)\s+gpus?\b|\bcpu[- ]only\b|\bnot on (?:a )?gpus?\b", t):
        r.gpus = 0
    elif re.search(r"\b(?:a|one|with|on|using|use)\s+(?:a\s+)?gpus?\b", t) \
            and not re.search(r"\d+\s*(?:x\s*)?gpus?\b", t):
        r.gpus = 1
    _start_time(r)
    if m := re.search(r"\bseed\s*(?:=|of|number)?\s*(\d+)\b", t):
        r.seed = int(m.group(1))


def _start_time(r: Reading) -> None:
    t = r.text
    clock = re.search(r"\b(?:at|from|after)\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm|o'?clock)?\b", t)
    hour_minute = None
    if clock and (clock.group(2) or clock.group(3)):
        hour, minute = int(clock.group(1)), int(clock.group(2) or 0)
        if clock.group(3) == "pm" and hour < 12:
            hour += 12
        if clock.group(3) == "am" and hour == 12:
            hour = 0
        if hour < 24 and minute < 60:
            hour_minute = f"{hour:02d}:{minute:02d}"
        else:
            r.unknown.append(clock.group(0).split(" ", 1)[1])
    tomorrow = re.search(r"\btomorrow\b", t)
    if re.search(r"\boff[- ]?peak\b|\bcheap(?:er|est)? hours\b|\bwhen it'?s cheap", t):
        r.start = "off-peak"
    elif re.search(r"\btonight\b|\bovernight\b|\bthis evening\b", t) and not hour_minute:
        r.start = "tonight"
    elif tomorrow:
        if hour_minute is None and re.search(r"\btomorrow morning\b", t):
            hour_minute = "09:00"
        r.start = f"tomorrow {hour_minute}" if hour_minute else "tomorrow"
    elif hour_minute:
        r.start = hour_minute
    if m := re.search(r"\bin\s+(\d+)\s*(hours?|hrs?|minutes?|mins?)\b", t):
        minutes = int(m.group(1)) * (60 if m.group(2).startswith("h") else 1)
        r.start = f"in {minutes} minutes"


def _ids(group: str) -> list[int]:
    """"3, 4 and 5", "3-7", "3 to 7": the ids in order."""
    out: list[int] = []
    for lo, hi, single in re.findall(r"#?(\d+)\s*(?:-|–|to|through|thru|\.\.)\s*#?(\d+)|#?(\d+)",
                                     group):
        if single:
            out.append(int(single))
        elif int(hi) >= int(lo) and int(hi) - int(lo) < 1000:
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.extend((int(lo), int(hi)))
    return out


ID_LIST = (r"#?\d+(?:\s*(?:-|–|to|through|thru|\.\.)\s*#?\d+)?"
           r"(?:\s*(?:,|and|&|or|\+)\s*(?:job\s*)?#?\d+(?:\s*(?:-|–|to|through|thru)\s*#?\d+)?)*")


def _job_references(r: Reading) -> None:
    t = r.text
    found: list[int] = []
    for m in re.finditer(rf"\b(?:jobs?|runs?|ids?|job ids?|numbers?)\s*(?:#|no\.?|number)?\s*"
                         rf"({ID_LIST})", t):
        if not _counted(t[m.end():]):  # "run 5 jobs": a count, not job 5
            found += _ids(m.group(1))
    found += [int(x) for x in re.findall(r"(?<![\w$])#(\d+)\b", t)]
    if m := re.search(rf"\bcompare\s+({ID_LIST})", t):  # "compare 3 and 4"
        found += _ids(m.group(1))
    if m := re.search(r"\b(?:except|but not|not|excluding|other than)\s+(?:jobs?\s*)?"
                      rf"({ID_LIST})", t):
        r.excluded_ids = _ids(m.group(1))
    r.job_ids = [j for j in dict.fromkeys(found) if j not in r.excluded_ids]
    if m := re.search(r"\b(?:the\s+)?(?:last|latest|newest|most recent)\s+(\d+)?\s*"
                      r"(?:\w+\s+)?(?:jobs?|runs?)\b", t):
        r.last = int(m.group(1)) if m.group(1) else 1
    for word, state in STATE_WORDS.items():
        if re.search(rf"\b{word}\b(?:\s+\w+)?\s+(?:jobs?|runs?|ones)\b|\b(?:jobs?|runs?)\s+"
                     rf"(?:that\s+)?(?:are|have|were|is|got)?\s*(?:been\s+)?(?:in\s+)?{word}\b|"
                     rf"\bstate\s+{word}\b|\b(?:everything|anything|all|ones|those)\s+(?:that\s+)?"
                     rf"(?:has\s+|have\s+|is\s+|are\s+|was\s+|were\s+)?(?:still\s+)?{word}\b|\bwhat'?s\s+(?:still\s+)?{word}\b",
                     t):
            r.state = state
            break
    if m := re.search(r"\b(?:last|final|latest)\s+(\d+)\s+lines\b|\b(\d+)\s+lines\b", t):
        r.lines = int(m.group(1) or m.group(2))


def _counted(after: str) -> bool:
    """Whether the words after a number say what it counts ("5 urgent jobs")."""
    for word in re.findall(r"[a-z'%$]+", after[:40])[:3]:
        if word in ("vs", "versus", "and", "or", "to", "with", "than", "is", "was", "has",
                    "had", "in", "on", "from", "of", "for"):
            return False
        if word in KNOWN_UNITS - SINGULAR_NOUNS:
            return True
    return False


# "job 7 policy", "run 3 config": after a job id these name the job's things, not a count.
SINGULAR_NOUNS = {"policy", "model", "scheduler", "config", "configuration", "run", "job",
                  "training", "experiment", "trial"}


def _quantities(r: Reading) -> None:
    t = r.text
    # Dollars first: "$5", "$0.50", "5 dollars", "50 cents", "a budget of 5".
    if m := re.search(r"\$\s*(\d+(?:,\d{3})*(?:\.\d+)?)\s*(k|m)?\b", t):
        r.dollars = _money(_to_number(m.group(1), m.group(2)))
    elif m := re.search(r"(\d+(?:\.\d+)?)\s*(?:dollars?|usd|bucks)\b", t):
        r.dollars = _money(float(m.group(1)))
    elif m := re.search(r"(\d+)\s*cents?\b", t):
        r.dollars = _money(int(m.group(1)) / 100)
    elif m := re.search(r"\b(?:budget|limit|cap)\s+(?:of|to|at)\s+(\d+(?:\.\d+)?)\b(?!\s*[a-z%])",
                        t):
        r.dollars = _money(float(m.group(1)))
    for m in QUANTITY.finditer(t):
        start = m.start()
        before = t[max(0, start - 16):start]
        digits, scale, after = m.group(1), m.group(2), (m.group(3) or "")
        phrase = t[start:m.end()].strip()
        if re.search(r"(?:\$\s*|#)$", before) or re.search(r"\d[.:]$", before):
            continue
        words = [w for w in after.split() if w not in FILLERS]
        unit = _unit(words)
        known = unit in KNOWN_UNITS
        if not known and (re.search(r"(?:\bjobs?|\bruns?|\bids?|\bnumber|\bno\.?|\bcompare)\s*#?\s*"
                                    r"(?:\d+\s*(?:,|and|&|or|-|to|through|\+)\s*#?\s*)*$", before)
                          or re.search(r"\b(?:except|excluding|but not|not|other than)\s+$",
                                       before)):
            continue  # a job id
        if re.search(r"\b(?:seed|top|last|latest|first|final)\s*=?\s*$", before) or (
                not known and re.search(r"\b(?:at|after|from|in|of)\s*$", before)):
            continue
        value = _to_number(digits, scale)
        if unit.startswith("$"):
            continue
        if re.match(r"^(?:dollars?|usd|bucks|cents?|lines?|am|pm|o'?clock)$", unit):
            continue
        whole_units = STEP_UNITS | HOST_UNITS | GPU_UNITS | COUNT_UNITS | WORKER_UNITS
        if unit in whole_units and _whole(value) is None:
            r.unknown.append(_quantity_phrase(phrase, unit))  # "2.5 hosts"
        elif unit.startswith("%"):
            r.unknown.append(f"{digits}%")
        elif unit in STEP_UNITS:
            r.steps = _whole(value)
        elif unit in HOST_UNITS:
            r.hosts = _whole(value)
        elif unit in GPU_UNITS:
            r.gpus = _whole(value)
        elif unit in CPU_UNITS:
            r.cpus = value
        elif unit in WORKER_UNITS:
            r.workers = _whole(value)
        elif unit in MEMORY_UNITS:
            r.memory_mb = _whole(value * MEMORY_UNITS[unit])
        elif unit in DURATION_UNITS and re.search(r"\bin\s+$", before):
            continue  # "in 2 hours": a start time, read above
        elif unit in DURATION_UNITS and (re.search(
                r"\b(?:at most|max(?:imum)?|up to|no (?:more|longer) than|limit(?:ed)? (?:of|to)|"
                r"time limit|runtime|for|within|under)\s+(?:of\s+)?$", before)
                or re.search(r"\b(?:limit|cap|max|maximum|timeout)\b",
                             after + " " + t[m.end():m.end() + 12])):
            r.runtime_s = _whole(value * DURATION_UNITS[unit])
        elif unit in COUNT_UNITS:
            r.count = _whole(value)
        elif unit == "" and re.search(r"\b(?:queue|submit|launch|train|start|run)\s+$", before):
            r.count = _whole(value)
        else:
            r.unknown.append(_quantity_phrase(phrase, unit))


KNOWN_UNITS = (STEP_UNITS | HOST_UNITS | GPU_UNITS | CPU_UNITS | WORKER_UNITS | set(MEMORY_UNITS)
               | DOLLAR_UNITS | COUNT_UNITS | set(DURATION_UNITS))


def _unit(words: list[str]) -> str:
    """What a number counts: the first known unit among the next words ("20 urgent jobs"),
    else the word right after it."""
    for word in words[:3]:
        if word in KNOWN_UNITS:
            return word
    return words[0] if words else ""


def _quantity_phrase(phrase: str, unit: str) -> str:
    """The number and the word it was attached to, for 'I did not understand ...'."""
    if not unit:
        return re.split(r"\s+", phrase)[0] if phrase else phrase
    head = phrase[:phrase.find(unit) + len(unit)] if unit in phrase else phrase
    return head.strip()


def _money(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


# Words that carry no request of their own.
STOP_WORDS = set("""
a an the i me my we us our you your it its is are was were be been am do does did done
to of in on at by for with from into onto up down out over about as so and or but if then
than that this these those there here what whats what's which who whom whose when where why
how can could would should will shall may might must please just also too very really now
some any all each every no not yes ok okay hey hi hello thanks thank let lets let's get give
go going want need like make made have has had one two three me? it's i'm i'd i'll don't
doesn't isn't aren't can't won't never
""".split())


def unfamiliar_words(text: str) -> list[str]:
    """Words of a request the reader has no use for, in order: what 'I did not understand'
    names when nothing in the request maps to a tool."""
    known = (set(VOCABULARY) | NOT_TYPOS | COMMON_WORDS | FILLERS | STOP_WORDS | KNOWN_UNITS
             | set(STATE_WORDS))
    words = re.findall(r"[a-z][a-z'-]+", text)
    return list(dict.fromkeys(w for w in words if len(w) > 2 and w not in known))
