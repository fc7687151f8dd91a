"""Inspect the Dagger module offline: the real dagger-io SDK builds every plan lazily; only leaf
values (stdout, exit codes, publish) would need an engine, and `OfflineEngine` answers those while
recording each query the module would send. Plans render to GraphQL with the SDK's own query
builder and validate against the schema a Dagger v0.21.8 engine served (committed beside the tests).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagger
import dagger.mod as dagger_mod
import graphql
import pytest
from dagger.client._core import Context, Field
from dagger.client._guards import is_id_type, is_id_type_sequence
from gql.dsl import DSLQuery, DSLSchema, dsl_gql

from support.container_files import plan_problems

ROOT = Path(__file__).resolve().parents[2]

#: The schema a Dagger v0.21.8 engine served to introspection (`dagger query` with graphql-core's
#: introspection query, printed as SDL), committed so every clone validates against it.
SCHEMA = Path(
    os.environ.get("BIKESHARE_DAGGER_SCHEMA", ROOT / "test/pipeline/dagger-schema-v0.21.8.graphqls")
)

Answer = Callable[[list[Field]], Any]
WORD = re.compile(r"^[a-z][a-z0-9-]*$")


def steps(obj: Any) -> list[Field]:
    """The selections of a lazy Dagger object: one Field per chained call."""
    return list(obj._ctx.selections)  # the SDK's own lazy plan


def calls(plan: list[Field], name: str) -> list[dict[str, Any]]:
    """The arguments of every `name` call in a plan, in order."""
    return [field.args for field in plan if field.name == name]


def nested_objects(plan: list[Field]) -> Iterator[Any]:
    """Every Dagger object passed as an argument (Directory, Secret, Service...), recursively."""
    for field in plan:
        for value in field.args.values():
            values = value if is_id_type_sequence(value) else [value]
            for item in values:
                if is_id_type(item):
                    yield item
                    yield from nested_objects(steps(item))


class OfflineEngineError(Exception):
    """What the engine would refuse: a path nobody created, a command line its program refuses."""


@dataclasses.dataclass
class OfflineEngine:
    """Answers leaf queries without an engine and records every query the module sends.

    Strict: before answering, each plan (and every plan passed into it) is replayed against the
    container's paths and its programs' parsers (support.container_files); a problem is recorded
    in `problems` and raised, as the engine would fail the query.
    """

    answer: Answer
    executed: list[list[Field]] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> OfflineEngine:
        engine = self

        async def execute(ctx: Context, return_type: Any = None) -> Any:
            plan = list(ctx.selections)
            engine.check(plan)
            return engine.answer(plan)

        async def execute_sync(ctx: Context, obj: Any, field_name: str = "sync", args: Any = ()):
            plan = [*steps(obj), Field(obj._graphql_name(), field_name, {})]
            engine.check(plan)
            engine.answer(plan)  # may raise, like a failing exec
            return obj  # the same lazy plan stays inspectable

        monkeypatch.setattr(Context, "execute", execute)
        monkeypatch.setattr(Context, "execute_sync", execute_sync)
        return self

    def check(self, plan: list[Field]) -> None:
        self.executed.append(plan)
        problems = plan_problems(plan)
        if problems:
            self.problems += problems
            raise OfflineEngineError("; ".join(problems))

    def take_problems(self) -> list[str]:
        """The problems so far, cleared (for tests that provoke them on purpose)."""
        found, self.problems = self.problems, []
        return found

    def plans_ending_with(self, name: str) -> list[list[Field]]:
        return [plan for plan in self.executed if plan and plan[-1].name == name]


def exec_error(
    command: list[str], stderr: str, exit_code: int = 1, stdout: str = ""
) -> dagger.ExecError:
    """The error the SDK raises for a failed exec, as the engine reports it."""
    from dagger._exceptions import QueryErrorValue

    value = QueryErrorValue(
        message=f"process {command} did not complete successfully: exit code: {exit_code}",
        extensions={"_type": "EXEC_ERROR", "cmd": command, "exitCode": exit_code,
                    "stdout": stdout, "stderr": stderr},
    )  # fmt: skip
    return dagger.ExecError([value], SimpleNamespace(document=None))


@functools.cache
def schema() -> graphql.GraphQLSchema:
    return graphql.build_schema(SCHEMA.read_text())


def render(plan: list[Field]) -> str:
    """The GraphQL query the SDK would send for `plan` (object arguments as placeholder IDs)."""
    fields = [dataclasses.replace(f, args=_placeholders(f.args)) for f in plan]
    last = fields[-1]
    result = graphql.get_named_type(
        schema().get_type(last.type_name).fields[last.name].type  # type: ignore[union-attr]
    )
    if isinstance(result, graphql.GraphQLObjectType):  # a leaf selection is needed
        fields.append(Field(result.name, "id", {}))
    root = functools.reduce(lambda child, f: f.add_child(child), reversed(fields))
    document = dsl_gql(DSLQuery(root.to_dsl(DSLSchema(schema())))).document
    return graphql.print_ast(document)


def validation_errors(plan: list[Field]) -> list[str]:
    """graphql-core's verdict on the rendered query, nested objects' plans included."""
    plans = [plan, *(steps(obj) for obj in nested_objects(plan))]
    errors = []
    for each in plans:
        if not each:
            continue
        try:
            text = render(each)
        except (KeyError, AttributeError, graphql.GraphQLError) as error:  # unknown field or arg
            errors.append(f"{type(error).__name__}: {error}")
            continue
        errors += [f"{e.message}\n{text}" for e in graphql.validate(schema(), graphql.parse(text))]
    return errors


def _placeholders(args: dict[str, Any]) -> dict[str, Any]:
    def swap(value: Any) -> Any:
        if is_id_type(value):
            return f"placeholder-{type(value).__name__}-id"
        if is_id_type_sequence(value):
            return [swap(v) for v in value]
        return value

    return {name: swap(value) for name, value in args.items()}


def dagger_functions(line: str) -> list[str]:
    """Function names in a `dagger call` line (flags must be written --name=value)."""
    line = re.sub(r"\$\([^)]*\)", "SUBSTITUTED", line.split(" # ")[0])
    tokens = line.split("dagger call", 1)[1].split()
    names, after_module_flag = [], False
    for word in tokens:
        if after_module_flag:  # -m's value is the module, not a function
            after_module_flag = False
        elif word == "-m":
            after_module_flag = True
        elif not word.startswith("-") and WORD.match(word):
            names.append(word)
    return names


@functools.cache
def registered() -> set[str]:
    """The module's function names as `dagger call` spells them (main object and Release)."""
    import bikeshare_ci  # noqa: F401 - importing registers the functions

    module = dagger_mod.default_module()
    functions = [
        *module.get_object("BikeshareCi").functions,
        *module.get_object("Release").functions,
    ]
    return {name.replace("_", "-") for name in functions if name}
