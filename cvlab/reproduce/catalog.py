"""The catalog of what `cvlab reproduce` checks: catalog.yaml read and checked.

    catalog = load_catalog()           # Catalog: .runs {name: RunSet}, .items [Item], .parts
    for item in catalog.for_parts(["batchnorm"]):
        result = evaluate(item, context)   # Evaluation: measured value, verdict, state

catalog.yaml has two sections. `runs:` names the runs the items read: each is one `cvlab
train` command line (`overrides`, e.g. [experiment=bn_deep] or [model=bn_fc,
sweep=weight_scale]) plus what each profile adds (`quick`, `full`; null: the run set is not
run in that profile). `items:` lists the claims, one each: a dotted `id` whose first part is
the part it belongs to, the `notebook` and `section` it comes from, `what` it says, the
`course` value (a number, a list, a dict, [low, high] or a short text), the `source` of that
value (the notebook cell that prints or states it), the `measure` (a registered measure and
its params), the `rule` (a registered rule kind and its params), the `profiles` it can be
shown in (default both) and, when it lacks quick, the `not_run_reason`.

Loading checks everything that can be checked without running anything (names of measures,
rules and patterns, the run sets an item reads, unique ids, known parts and notebooks,
profiles) and fails with one line naming the item (CatalogError).

The types the measures and rules use are re-exported here: MeasureContext, Measured
(cvlab.reproduce.measures) and Verdict (cvlab.reproduce.rules).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cvlab.errors import error_line
from cvlab.reproduce.measures import MeasureContext, Measured, get_measure, run_params, using
from cvlab.reproduce.rules import OPERATORS, Verdict, entries, get_pattern, get_rule, judge

__all__ = ["Catalog", "CatalogError", "Evaluation", "Item", "MeasureContext", "Measured",
           "NOTEBOOKS", "PARTS", "PROFILES", "RunSet", "Verdict", "evaluate", "load_catalog"]

PARTS = ("layers", "batchnorm", "dropout", "cnn", "pytorch", "captioning")
NOTEBOOKS = ("FullyConnectedNets", "BatchNormalization", "Dropout", "ConvolutionalNetworks",
             "PyTorch", "RNN_Captioning_pytorch")
PROFILES = ("quick", "full")
CATALOG_PATH = Path(str(resources.files("cvlab.reproduce") / "catalog.yaml"))
ITEM_KEYS = {"id", "notebook", "section", "what", "course", "source", "measure", "rule",
             "profiles", "not_run_reason"}
RUN_KEYS = {"part", "overrides", "quick", "full", "note", "cpu", "needs"}
NEEDS = ("coco",)


class CatalogError(ValueError):
    """catalog.yaml cannot be used: one line naming the item or run set and what is wrong."""


@dataclass(frozen=True)
class RunSet:
    """One `cvlab train` command of the catalog: its overrides and what each profile adds
    (None: not run in that profile)."""

    name: str
    part: str
    overrides: tuple[str, ...]
    quick: tuple[str, ...] | None
    full: tuple[str, ...] | None
    note: str = ""
    cpu: tuple[str, ...] | None = None  # full on a machine without a GPU: these overrides
    needs: str | None = None  # a data set the full profile needs (coco); missing: not run

    def command(self, profile: str, gpu: bool = True) -> list[str] | None:
        """The overrides `cvlab train` is given in `profile` (the CPU variant, where the run
        set has one, when there is no GPU); None when not run there."""
        extra = self.quick if profile == "quick" else self.full
        if extra is None:
            return None
        base = self.cpu if profile == "full" and not gpu and self.cpu is not None \
            else self.overrides
        return [*base, *extra]


@dataclass(frozen=True)
class Item:
    """One claim of a notebook and how it is checked."""

    id: str
    notebook: str
    section: str
    what: str
    course: Any
    measure: dict[str, Any]
    rule: dict[str, Any]
    profiles: tuple[str, ...] = PROFILES
    source: str = ""
    not_run_reason: str = ""

    @property
    def part(self) -> str:
        return self.id.split(".")[0]

    @property
    def measure_params(self) -> dict[str, Any]:
        return {key: value for key, value in self.measure.items() if key != "name"}

    @property
    def run_names(self) -> list[str]:
        """The run sets the item's measure reads (none for the in-process measures)."""
        return run_params(self.measure_params)


@dataclass
class Catalog:
    runs: dict[str, RunSet]
    items: list[Item]

    @property
    def parts(self) -> list[str]:
        """The parts the items belong to, in PARTS order."""
        present = {item.part for item in self.items}
        return [part for part in PARTS if part in present]

    def for_parts(self, parts: list[str] | tuple[str, ...]) -> list[Item]:
        """The items of the given parts ("all": every item), in catalog order."""
        wanted = set(PARTS) if "all" in parts else set(parts)
        unknown = wanted - set(PARTS)
        if unknown:
            raise CatalogError(f"unknown part(s) {', '.join(sorted(unknown))}; valid: all, "
                               f"{', '.join(PARTS)}")
        return [item for item in self.items if item.part in wanted]

    def runs_for(self, items: list[Item], profile: str) -> list[RunSet]:
        """The run sets the items read in `profile`, in catalog order."""
        names = {name for item in items if profile in item.profiles for name in item.run_names}
        return [run for name, run in self.runs.items() if name in names
                and run.command(profile) is not None]


def load_catalog(path: Path | None = None) -> Catalog:
    """Read and check catalog.yaml (the package's own unless `path`); CatalogError (one line)
    on anything that cannot be used."""
    import yaml

    path = Path(path) if path is not None else CATALOG_PATH
    try:
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as err:
        raise CatalogError(f"{path} cannot be read ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(data, dict) or not isinstance(data.get("items"), list) \
            or not isinstance(data.get("runs"), dict):
        raise CatalogError(f"{path}: expected a mapping with `runs:` (a mapping) and `items:` "
                           "(a list)")
    runs = {name: _run_set(name, spec) for name, spec in data["runs"].items()}
    items, seen = [], set()
    for index, spec in enumerate(data["items"]):
        item = _item(index, spec)
        if item.id in seen:
            raise CatalogError(f"item {item.id}: the id is used twice")
        seen.add(item.id)
        _check_item(item, runs)
        items.append(item)
    return Catalog(runs=runs, items=items)


# --- reading and checking ---------------------------------------------------------------------


def _optional_list(value: Any, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogError(f"{what} must be a list of overrides (key=value strings) or null")
    return tuple(value)


def _run_set(name: str, spec: Any) -> RunSet:
    where = f"run set {name}"
    if not isinstance(spec, dict):
        raise CatalogError(f"{where}: expected a mapping (part, overrides, quick, full)")
    extra = set(spec) - RUN_KEYS
    if extra:
        raise CatalogError(f"{where}: unknown key(s) {', '.join(sorted(extra))}; valid: "
                           f"{', '.join(sorted(RUN_KEYS))}")
    if spec.get("part") not in PARTS:
        raise CatalogError(f"{where}: part {spec.get('part')!r} is not one of "
                           f"{', '.join(PARTS)}")
    overrides = _optional_list(spec.get("overrides"), f"{where}: overrides")
    if not overrides:
        raise CatalogError(f"{where}: overrides must name what `cvlab train` runs")
    quick = _optional_list(spec.get("quick"), f"{where}: quick")
    full = _optional_list(spec.get("full"), f"{where}: full")
    if quick is None and full is None:
        raise CatalogError(f"{where}: runs in no profile (quick and full are both null)")
    if spec.get("needs") not in (None, *NEEDS):
        raise CatalogError(f"{where}: needs {spec['needs']!r} is not one of {', '.join(NEEDS)}")
    return RunSet(name, spec["part"], overrides, quick, full, str(spec.get("note") or ""),
                  _optional_list(spec.get("cpu"), f"{where}: cpu"), spec.get("needs"))


def _item(index: int, spec: Any) -> Item:
    if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
        raise CatalogError(f"item {index + 1}: expected a mapping with an `id`")
    where = f"item {spec['id']}"
    extra = set(spec) - ITEM_KEYS
    if extra:
        raise CatalogError(f"{where}: unknown key(s) {', '.join(sorted(extra))}; valid: "
                           f"{', '.join(sorted(ITEM_KEYS))}")
    for key in ("notebook", "section", "what"):
        if not isinstance(spec.get(key), str) or not spec[key].strip():
            raise CatalogError(f"{where}: `{key}` must be a non-empty text")
    if "course" not in spec:
        raise CatalogError(f"{where}: `course` (the course's value or claim) is missing")
    for key, name_key in (("measure", "name"), ("rule", "kind")):
        if not isinstance(spec.get(key), dict) or not isinstance(spec[key].get(name_key), str):
            raise CatalogError(f"{where}: `{key}` must be a mapping with a `{name_key}`")
    profiles = spec.get("profiles", list(PROFILES))
    if not isinstance(profiles, list) or not profiles or not set(profiles) <= set(PROFILES):
        raise CatalogError(f"{where}: profiles {profiles!r} must be a non-empty list of "
                           f"{', '.join(PROFILES)}")
    return Item(id=spec["id"], notebook=spec["notebook"], section=spec["section"],
                what=spec["what"], course=spec["course"], measure=dict(spec["measure"]),
                rule=dict(spec["rule"]), profiles=tuple(profiles),
                source=str(spec.get("source") or ""),
                not_run_reason=str(spec.get("not_run_reason") or ""))


def _check_item(item: Item, runs: dict[str, RunSet]) -> None:
    """Names, parts, notebooks, run sets and profiles of one item (CatalogError)."""
    where = f"item {item.id}"
    if item.part not in PARTS:
        raise CatalogError(f"{where}: the id must start with a part ({', '.join(PARTS)})")
    if item.notebook not in NOTEBOOKS:
        raise CatalogError(f"{where}: notebook {item.notebook!r} is not one of "
                           f"{', '.join(NOTEBOOKS)}")
    try:
        get_measure(item.measure["name"])
        get_rule(item.rule["kind"])
        if item.rule["kind"] == "pattern":
            get_pattern(str(item.rule.get("name")))
    except ValueError as err:
        raise CatalogError(f"{where}: {err}") from None
    _check_rule_params(item)
    if "quick" not in item.profiles and not item.not_run_reason:
        raise CatalogError(f"{where}: it is not shown in the quick profile; say why in "
                           "`not_run_reason`")
    for name in item.run_names:
        if name not in runs:
            raise CatalogError(f"{where}: reads run set {name!r}, which `runs:` does not "
                               "name")
        for profile in item.profiles:
            if runs[name].command(profile) is None:
                raise CatalogError(f"{where}: is shown in profile {profile} but run set "
                                   f"{name} does not run there")


def _check_rule_params(item: Item) -> None:
    """The course value and params each rule kind needs: numbers for close, bounds for range
    (params low/high or a course [low, high]), an operator and a numeric bound for
    threshold."""
    kind, params = item.rule["kind"], item.rule
    try:
        if kind == "close":
            entries(item.course)
        elif kind == "range" and "low" not in params and "high" not in params:
            low, high = item.course
            float(low), float(high)
        elif kind == "threshold":
            if params.get("op") not in OPERATORS:
                raise ValueError(f"op {params.get('op')!r} is not one of {', '.join(OPERATORS)}")
            float(item.course if params.get("bound") == "course" else params.get("bound"))
    except (TypeError, ValueError) as err:
        raise CatalogError(f"item {item.id}: rule {kind} cannot judge course {item.course!r} "
                           f"with {dict(params)} ({err})") from None


# --- evaluating one item ----------------------------------------------------------------------


@dataclass
class Evaluation:
    """An item's result: `state` held | not_held | not_run, the measured value (None when
    not measured), the verdict's one-line detail, and the measure's figure."""

    state: str
    value: Any = None
    detail: str = ""
    figure: Path | None = None
    measured: Measured | None = field(default=None, repr=False)


def evaluate(item: Item, context: MeasureContext) -> Evaluation:
    """Measure the item in `context` and judge it by its rule. Not run when the profile does
    not show it or the measure could not be taken here; a measure or rule that raises gives
    not_held with the error's first line (a broken implementation must not pass). The
    in-process measures use `context.implementation` when there is one (impl=)."""
    if context.profile not in item.profiles:
        return Evaluation("not_run", detail=item.not_run_reason or
                          f"not shown in profile {context.profile}")
    try:
        with using(context.implementation):
            measured = get_measure(item.measure["name"])(context, **item.measure_params)
    except Exception as err:  # noqa: BLE001 - a failing implementation is a result
        return Evaluation("not_held", detail=f"measure failed: {error_line(err)}")
    if measured.not_run:
        return Evaluation("not_run", detail=measured.not_run, measured=measured)
    try:
        verdict = judge(measured.value, item.course, item.rule)
    except Exception as err:  # noqa: BLE001
        verdict = Verdict(False, f"rule failed: {error_line(err)}")
    detail = verdict.detail + (f"; {measured.detail}" if measured.detail else "")
    return Evaluation("held" if verdict.held else "not_held", measured.value, detail,
                      measured.figure, measured)
