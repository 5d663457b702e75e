"""The record and the report of a reproduction (`cvlab reproduce`).

reproduction.json (format 1) is the record: every item of the course's notebooks with the
course's value, cvlab's value, the rule and the verdict. `dump_reproduction` writes it
atomically and `load_reproduction` reads it back, checked (one-line RecordError for a file that
is damaged, foreign or tampered with; plain JSON, nothing in it is executed).

`write_report` renders report.md and report.html from that content only, through one view of
it (`report_view`), so that the two cannot disagree. report.html is one self-contained file: the
figures are embedded as base64 data: URIs, the CSS is inline, nothing is fetched from any URL,
and every text of the record is escaped (jinja2 with autoescape).
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from cvlab.records.files import RecordError, atomic_write_text, to_json

REPRODUCTION_NAME = "reproduction.json"
REPORT_MD_NAME = "report.md"
REPORT_HTML_NAME = "report.html"
TEMPLATE_PATH = Path(__file__).with_name("report.html.j2")
FORMAT = 1
COMMAND = "reproduce"
VERDICTS = ("held", "not_held", "not_run")
VERDICT_WORDS = {"held": "held", "not_held": "not held", "not_run": "not run"}
VERDICT_MARKS = {"held": "\u2713", "not_held": "\u2717", "not_run": "\u2013"}
FIGURE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                ".svg": "image/svg+xml"}
MAX_DEPTH = 32  # nesting of a value, a rule or the machine's description
MAX_LIST_SHOWN = 10  # a longer list shows its first values and how many more
TOP_KEYS = ("format", "command", "profile", "parts", "started", "wall_time_s", "machine",
            "counts", "notebooks", "items")
ITEM_TEXTS = ("id", "notebook", "section", "what", "detail")
ITEM_KEYS = (*ITEM_TEXTS, "course", "value", "rule", "verdict", "figure", "runs")


# ---- reproduction.json ---------------------------------------------------------------------

def dump_reproduction(folder: Path, reproduction: dict[str, Any]) -> Path:
    """Check `reproduction` and write it to <folder>/reproduction.json atomically; the path."""
    path = Path(folder) / REPRODUCTION_NAME
    check_reproduction(reproduction, path)
    atomic_write_text(path, to_json(reproduction))
    return path


def load_reproduction(folder: Path) -> dict[str, Any]:
    """<folder>/reproduction.json as a dict, checked by `check_reproduction`; RecordError (one
    line naming the file) when it is missing, not JSON or not a cvlab reproduction record."""
    path = Path(folder) / REPRODUCTION_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except FileNotFoundError:
        raise RecordError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RecordError(f"{path} cannot be read ({reason})") from None
    check_reproduction(data, path)
    return data


def _refuse_constant(name: str) -> Any:
    """json.loads hook: NaN and Infinity are not JSON (cvlab writes them as strings)."""
    raise ValueError(f"{name} is not a JSON value")


def check_reproduction(data: Any, path: Path) -> None:
    """RecordError (one line: the file and what is wrong) unless `data` is a format-1
    reproduction record whose counts agree with its items."""
    if not isinstance(data, dict):
        raise RecordError(f"{path} is not a reproduction record (a JSON object)")
    missing = [key for key in TOP_KEYS if key not in data]
    if missing:
        raise RecordError(f"{path} is not a reproduction record (it lacks {', '.join(missing)})")
    if data["format"] != FORMAT or isinstance(data["format"], bool):
        raise RecordError(f"{path}: format is {_short(data['format'])}, not {FORMAT} (written by "
                          "another version of cvlab?)")
    if data["command"] != COMMAND:
        raise RecordError(f"{path}: command is {_short(data['command'])}, not {COMMAND!r}")
    _check_settings(data, path)
    if not isinstance(data["items"], list):
        raise RecordError(f"{path}: items is {_type_name(data['items'])}, not a list")
    if not isinstance(data["notebooks"], list):
        raise RecordError(f"{path}: notebooks is {_type_name(data['notebooks'])}, not a list")
    notebooks = _check_notebooks(data["notebooks"], path)
    ids: set[str] = set()
    for index, item in enumerate(data["items"]):
        _check_item(item, f"items[{index}]", path, notebooks)
        if item["id"] in ids:
            raise RecordError(f"{path}: items[{index}].id {_short(item['id'])} appears twice")
        ids.add(item["id"])
    _check_counts(data, path)


def _check_settings(data: dict[str, Any], path: Path) -> None:
    """The settings and the machine: profile, parts, started, wall_time_s, machine."""
    if not isinstance(data["profile"], str):
        raise RecordError(f"{path}: profile is {_short(data['profile'])}, not a name")
    parts = data["parts"]
    if not isinstance(parts, list) or not all(isinstance(part, str) for part in parts):
        raise RecordError(f"{path}: parts is {_short(parts)}, not a list of names")
    if data["started"] is not None and not isinstance(data["started"], str):
        raise RecordError(f"{path}: started is {_short(data['started'])}, not a time")
    _check_seconds(data["wall_time_s"], "wall_time_s", path)
    if not isinstance(data["machine"], dict):
        raise RecordError(f"{path}: machine is {_type_name(data['machine'])}, not an object")
    _check_depth(data["machine"], "machine", path)


def _check_notebooks(notebooks: list[Any], path: Path) -> set[str]:
    """Each notebook an object with a unique name, counts and a wall time; their names."""
    names: set[str] = set()
    for index, notebook in enumerate(notebooks):
        where = f"notebooks[{index}]"
        if not isinstance(notebook, dict):
            raise RecordError(f"{path}: {where} is {_type_name(notebook)}, not an object")
        name = notebook.get("name")
        if not isinstance(name, str) or not name:
            raise RecordError(f"{path}: {where}.name is {_short(name)}, not a name")
        if name in names:
            raise RecordError(f"{path}: notebook {name!r} appears twice in notebooks")
        names.add(name)
        _check_count_object(notebook.get("counts"), f"{where}.counts", path)
        _check_seconds(notebook.get("wall_time_s"), f"{where}.wall_time_s", path)
    return names


def _check_item(item: Any, where: str, path: Path, notebooks: set[str]) -> None:
    """One item: every key of the format, texts as strings, a known verdict and notebook, a
    rule with a kind, a figure inside the folder (or null) and the runs as a list of names."""
    if not isinstance(item, dict):
        raise RecordError(f"{path}: {where} is {_type_name(item)}, not an object")
    missing = [key for key in ITEM_KEYS if key not in item]
    if missing:
        raise RecordError(f"{path}: {where} lacks {', '.join(missing)}")
    for key in ITEM_TEXTS:
        if not isinstance(item[key], str):
            raise RecordError(f"{path}: {where}.{key} is {_short(item[key])}, not a text")
    if not item["id"]:
        raise RecordError(f"{path}: {where}.id is empty")
    if item["verdict"] not in VERDICTS:
        raise RecordError(f"{path}: {where}.verdict is {_short(item['verdict'])}, not one of "
                          f"{', '.join(VERDICTS)}")
    if item["notebook"] not in notebooks:
        raise RecordError(f"{path}: {where}.notebook {item['notebook']!r} is not in notebooks")
    rule = item["rule"]
    if not isinstance(rule, dict) or not isinstance(rule.get("kind"), str):
        raise RecordError(f"{path}: {where}.rule is {_short(rule)}, not an object with a kind")
    for key in ("course", "value", "rule"):
        _check_depth(item[key], f"{where}.{key}", path)
    _check_figure(item["figure"], f"{where}.figure", path)
    runs = item["runs"]
    if not isinstance(runs, list) or not all(isinstance(run, str) for run in runs):
        raise RecordError(f"{path}: {where}.runs is {_short(runs)}, not a list of names")


def _check_figure(figure: Any, where: str, path: Path) -> None:
    """A figure is null or a relative path inside the folder to a PNG, JPEG or SVG file."""
    if figure is None:
        return
    if not isinstance(figure, str) or not figure:
        raise RecordError(f"{path}: {where} is {_short(figure)}, not a relative path")
    relative = PurePosixPath(figure)
    if relative.is_absolute() or ".." in relative.parts or "\\" in figure or ":" in figure:
        raise RecordError(f"{path}: {where} {figure[:60]!r} is not a path inside the folder")
    if relative.suffix.lower() not in FIGURE_TYPES:
        raise RecordError(f"{path}: {where} {figure[:60]!r} is not a figure "
                          f"({', '.join(FIGURE_TYPES)})")


def _check_counts(data: dict[str, Any], path: Path) -> None:
    """The counts, in total and per notebook, are those of the items' verdicts."""
    _check_count_object(data["counts"], "counts", path)
    if data["counts"] != tally(data["items"]):
        raise RecordError(f"{path}: counts {_short(data['counts'])} are not those of its items "
                          f"{_short(tally(data['items']))}")
    for notebook in data["notebooks"]:
        items = [item for item in data["items"] if item["notebook"] == notebook["name"]]
        if notebook["counts"] != tally(items):
            raise RecordError(f"{path}: counts of notebook {notebook['name']!r} are not those "
                              f"of its items {_short(tally(items))}")


def _check_count_object(counts: Any, where: str, path: Path) -> None:
    """Counts are an object of exactly held, not_held and not_run, each a count."""
    if (not isinstance(counts, dict) or set(counts) != set(VERDICTS)
            or not all(_is_count(counts[verdict]) for verdict in VERDICTS)):
        raise RecordError(f"{path}: {where} is {_short(counts)}, not counts of "
                          f"{', '.join(VERDICTS)}")


def _check_seconds(value: Any, where: str, path: Path) -> None:
    """A wall time: null or a finite number of seconds >= 0."""
    if value is None:
        return
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise RecordError(f"{path}: {where} is {_short(value)}, not a number of seconds")


def _check_depth(tree: Any, where: str, path: Path) -> None:
    """Values, rules and the machine nest at most MAX_DEPTH levels."""
    level, depth = [tree], 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise RecordError(f"{path}: {where} is nested more than {MAX_DEPTH} levels deep")
        level = [child for node in level if isinstance(node, (dict, list))
                 for child in (node.values() if isinstance(node, dict) else node)]


def tally(items: list[dict[str, Any]]) -> dict[str, int]:
    """How many items have each verdict."""
    return {verdict: sum(item["verdict"] == verdict for item in items) for verdict in VERDICTS}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a text", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    """A value in an error message: its JSON text, cut to 60 characters, on one line."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


# ---- the view both reports render ----------------------------------------------------------

def format_value(value: Any) -> str:
    """A course or cvlab value as text: numbers to 4 significant digits, [low, high] ranges,
    lists shortened after MAX_LIST_SHOWN values, null as an em dash."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if abs(value) < 10**6 else f"{value:.4g}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        shown = [format_value(element) for element in value[:MAX_LIST_SHOWN]]
        if len(value) > MAX_LIST_SHOWN:
            shown.append(f"\u2026 {len(value) - MAX_LIST_SHOWN} more")
        return "[" + ", ".join(shown) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {format_value(v)}" for key, v in value.items()) + "}"
    return str(value)


def format_rule(rule: dict[str, Any]) -> str:
    """A rule as its kind and its parameters: `close (atol=1e-07)`."""
    params = [f"{key}={format_value(value)}" for key, value in rule.items() if key != "kind"]
    return f"{rule['kind']} ({', '.join(params)})" if params else str(rule["kind"])


def format_seconds(seconds: float | None) -> str:
    """A wall time: 12.3 s, 4 min 05 s, 2 h 03 min (an em dash when unknown)."""
    if seconds is None:
        return "\u2014"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def report_view(reproduction: dict[str, Any]) -> dict[str, Any]:
    """Everything the two reports show, as texts, in the record's order: the summary (per
    notebook and in total), the settings, the machine and each notebook's figure groups."""
    counts = reproduction["counts"]
    notebooks = [_notebook_view(index, notebook, reproduction["items"])
                 for index, notebook in enumerate(reproduction["notebooks"])]
    return {
        "title": "cvlab reproduce: the course notebooks' claims, item by item",
        "counts": counts,
        "total": sum(counts.values()),
        "wall_time": format_seconds(reproduction["wall_time_s"]),
        "notebooks": notebooks,
        "settings": [
            ("profile", reproduction["profile"]),
            ("parts", ", ".join(reproduction["parts"]) or "\u2014"),
            ("started", reproduction["started"] or "\u2014"),
            ("wall time", format_seconds(reproduction["wall_time_s"])),
            *_implementation_setting(reproduction.get("implementation")),
        ],
        "machine": [(str(key), format_value(value))
                    for key, value in reproduction["machine"].items()],
        "verdicts": [(verdict, VERDICT_WORDS[verdict], VERDICT_MARKS[verdict])
                     for verdict in VERDICTS],
    }


def _implementation_setting(implementation: Any) -> list[tuple[str, str]]:
    """`cvlab reproduce impl=`: whose code the items marked [yours] ran (folder, digest)."""
    if not isinstance(implementation, dict):
        return []
    return [("implementation", f"{implementation.get('folder')} (digest "
                               f"{implementation.get('digest')}); items marked [yours] ran "
                               "your code, [cvlab's] cvlab's")]


def _notebook_view(index: int, notebook: dict[str, Any], items: list[dict[str, Any]]
                   ) -> dict[str, Any]:
    """One notebook: its name, anchor, counts, wall time and its items grouped by figure (in
    the order each figure first appears; the items without a figure form one group)."""
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for item in items:
        if item["notebook"] == notebook["name"]:
            groups.setdefault(item["figure"], []).append(_item_view(item))
    return {
        "name": notebook["name"],
        "anchor": f"notebook-{index + 1}",
        "counts": notebook["counts"],
        "total": sum(notebook["counts"].values()),
        "wall_time": format_seconds(notebook["wall_time_s"]),
        "groups": [{"figure": figure, "items": rows} for figure, rows in groups.items()],
    }


def _item_view(item: dict[str, Any]) -> dict[str, Any]:
    """One item's row: every cell as text."""
    return {
        "id": item["id"],
        "section": item["section"],
        "what": item["what"],
        "course": format_value(item["course"]),
        "value": format_value(item["value"]),
        "rule": format_rule(item["rule"]),
        "verdict": item["verdict"],
        "verdict_word": VERDICT_WORDS[item["verdict"]],
        "verdict_mark": VERDICT_MARKS[item["verdict"]],
        "detail": item["detail"] + (f" [{item['implementation']}]"
                                    if isinstance(item.get("implementation"), str) else ""),
        "runs": ", ".join(item["runs"]),
    }


# ---- report.md and report.html -------------------------------------------------------------

def write_report(folder: Path, reproduction: dict[str, Any]) -> list[Path]:
    """Write <folder>/report.md and <folder>/report.html from `reproduction` (the content of
    reproduction.json, checked first) and nothing else; their paths."""
    folder = Path(folder)
    check_reproduction(reproduction, folder / REPRODUCTION_NAME)
    view = report_view(reproduction)
    md_path, html_path = folder / REPORT_MD_NAME, folder / REPORT_HTML_NAME
    atomic_write_text(md_path, render_markdown(view))
    atomic_write_text(html_path, render_html(view, folder))
    return [md_path, html_path]


def render_html(view: dict[str, Any], folder: Path) -> str:
    """report.html: the jinja2 template (autoescape on) with the figures as data: URIs."""
    import jinja2

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=True)
    template = environment.from_string(TEMPLATE_PATH.read_text(encoding="utf-8"))
    figures = {group["figure"]: embed_figure(folder, group["figure"])
               for notebook in view["notebooks"] for group in notebook["groups"]
               if group["figure"] is not None}
    return template.render(view=view, figures=figures)


def embed_figure(folder: Path, figure: str) -> dict[str, str | None]:
    """A figure file as a data: URI ({"uri": ...}), or why it cannot be shown ({"missing": ...}):
    a file that is gone, unreadable or outside the folder (a link) is named, never fatal."""
    path = folder / figure
    try:
        if not path.resolve().is_relative_to(folder.resolve()):
            return {"uri": None, "missing": f"{figure} points outside the folder"}
        data = path.read_bytes()
    except OSError as err:
        return {"uri": None, "missing": f"{figure} cannot be read ({err.strerror or err})"}
    mime = FIGURE_TYPES[PurePosixPath(figure).suffix.lower()]
    return {"uri": f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}",
            "missing": None}


def render_markdown(view: dict[str, Any]) -> str:
    """report.md: the same content as report.html, figures as relative image links."""
    lines = [f"# {view['title']}", "", _md_headline(view), "", "## Summary", ""]
    lines += _md_table(["notebook", "held", "not held", "not run", "wall time"],
                       [[_md(nb["name"]),
                         *(str(nb["counts"][verdict]) for verdict, _, _ in view["verdicts"]),
                         nb["wall_time"]] for nb in view["notebooks"]]
                       + [["**total**",
                           *(f"**{view['counts'][verdict]}**" for verdict, _, _ in
                             view["verdicts"]), view["wall_time"]]])
    lines += ["", "## Settings and machine", ""]
    lines += _md_table(["setting", "value"], [[_md(key), _md(value)]
                                              for key, value in view["settings"]])
    lines += [""]
    lines += _md_table(["machine", ""], [[_md(key), _md(value)] for key, value in view["machine"]])
    for notebook in view["notebooks"]:
        lines += ["", *_md_notebook(notebook)]
    return "\n".join(lines) + "\n"


def _md_headline(view: dict[str, Any]) -> str:
    """The one-line verdict of the whole reproduction."""
    parts = [f"{mark} {view['counts'][verdict]} {word}" for verdict, word, mark in
             view["verdicts"]]
    return "**" + " \u00b7 ".join(parts) + f"** of {view['total']} items."


def _md_notebook(notebook: dict[str, Any]) -> list[str]:
    """A notebook's section: its counts and wall time, then each figure and its items."""
    counts = ", ".join(f"{notebook['counts'][verdict]} {VERDICT_WORDS[verdict]}"
                       for verdict in VERDICTS)
    lines = [f"## {_md(notebook['name'])}", "",
             f"{counts} of {notebook['total']} items; wall time {notebook['wall_time']}."]
    for group in notebook["groups"]:
        lines.append("")
        if group["figure"] is not None:
            lines += [f"![{_md(group['figure'])}]({quote(group['figure'])})", ""]
        rows = [[f"{_md(item['id'])}<br>{_md(item['section'])}", _md(item["what"]),
                 _md(item["course"]), _md(item["value"]), _md(item["rule"]),
                 f"**{item['verdict_mark']} {item['verdict_word']}**",
                 _md(item["detail"]) + (f" (runs {_md(item['runs'])})" if item["runs"] else "")]
                for item in group["items"]]
        lines += _md_table(["item", "what", "course", "cvlab", "rule", "verdict", "detail"],
                           rows)
    return lines


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table (cells already escaped)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _md(text: str) -> str:
    """A text of the record in a Markdown table cell: HTML and Markdown markup shown as text,
    one line."""
    text = " ".join(str(text).split())
    for char, escaped in (("\\", "\\\\"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"),
                          ("|", "\\|"), ("*", "\\*"), ("_", "\\_"), ("`", "\\`"),
                          ("[", "\\["), ("]", "\\]")):
        text = text.replace(char, escaped)
    return text
