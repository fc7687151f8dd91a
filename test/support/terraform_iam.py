"""The IAM JSON policy documents that `terraform apply` of infra/terraform would produce.

No terraform binary or AWS provider is available to the tests, so this module evaluates the HCL
itself (parsed with python-hcl2) for exactly the subset of the Terraform language that the
configuration uses, and renders `data "aws_iam_policy_document"` as the AWS provider does. An AWS
stand-in can then enforce the very policies the pipeline's roles would get:

    rendered = render()  # or render(Setting().with_variables(environments={...}))
    rendered.roles["bikeshare-deployer-staging"].policies  # {"release-...": {"Version": ...}}
    rendered.documents['deployer["staging"]'], rendered.resource_policies["aws_kms_key.bikeshare"]
    rendered.arn("aws_ecr_repository.serving")

Anything outside the subset raises `UnsupportedTerraform`, and anything `terraform plan` itself
would reject raises `InvalidTerraform`; both messages name the file, the block and the expression.
Nothing is guessed and nothing is silently dropped. Each evaluated expression is checked whole
first, so an unsupported construct or an undeclared reference fails even in the branch of a
conditional that the current variables do not take.

The subset:

* blocks: `variable` (values: `Setting.variables`, else the default, else `TEST_VARIABLES`;
  `validation` blocks are checked), `locals` (lazy, may refer to each other), `resource`, `data`,
  `provider "aws"` (for its region), with `for_each` (a map or `toset(...)`) and `count`. Blocks
  are evaluated only as far as the IAM documents need them; `output`, `terraform`, `moved`,
  `import`, `removed` and `check` blocks never are. `module` blocks, `*.tf.json` files, override
  files, aliased providers and IAM resource types other than roles, inline role policies and
  OIDC providers are refused.
* expressions: strings with `${...}` interpolation and HCL escapes, whole numbers, bools, null,
  tuples, objects, `var.X`, `local.X`, `each.key`, `each.value`, `count.index`, `data.T.N.attr`,
  `T.N.attr`, `x[KEY]`, `x.attr`, `c ? a : b`, `== != && || !` (python-hcl2's grammar already
  nests them by Terraform's precedence), `[for ...]` and `{for ... => ...}` with `if`.
* functions: alltrue, can, concat, contains, distinct, flatten, keys, length, lookup, lower,
  regex (without capture groups; Python's `re` standing in for RE2), startswith, toset, values.
* attributes AWS computes (`_Evaluator._computed`): the ARNs and ids of IAM roles, OIDC providers,
  ECR repositories, S3 buckets, KMS keys (a fixed fake key id per key), CloudWatch alarms and SNS
  topics, from their own arguments; the account and partition of `Setting`; the region of the
  provider; `.json` of policy documents. A configured argument of any resource can be read back.

Rendering follows the AWS provider (internal/service/iam/policy_document_data_source.go and
policy_model.go): statements of `source_policy_documents` first (a Sid may appear in only one of
them), then the document's own, each replacing a source statement with the same non-empty Sid in
place; set-typed arguments (actions, resources, principal identifiers) are deduplicated and sorted
in reverse, condition values keep their order, conditions with the same test and variable merge
their values, and `&{` becomes `${` in resources, identifiers and condition values. One deliberate
difference: where the provider writes a single-element list as a bare string, this writes a list
of one, which IAM treats the same.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import hcl2
from lark import Token, Tree
from lark.exceptions import LarkError

TERRAFORM = Path(__file__).resolve().parents[2] / "infra" / "terraform"

#: Values for the variables that have no default: what a test tfvars file would give.
TEST_VARIABLES: Mapping[str, Any] = MappingProxyType(
    {"github_repository": "octo-org/bikeshare", "model_bucket_name": "bikeshare-models"}
)


class TerraformIamError(Exception):
    """The Terraform cannot be rendered: the message names the file, block and expression."""


class UnsupportedTerraform(TerraformIamError):
    """A construct outside the subset of Terraform this module evaluates."""


class InvalidTerraform(TerraformIamError):
    """Something `terraform plan` itself would reject."""


class EvaluationError(InvalidTerraform):
    """An expression failed on its values: what Terraform's `can()` turns into false."""


@dataclass(frozen=True)
class Setting:
    """The values a real `terraform apply` would take from the account and the tfvars."""

    account_id: str = "123456789012"
    partition: str = "aws"
    #: Variable values given as by tfvars. A variable not given takes its variables.tf default;
    #: one without a default (github_repository, model_bucket_name) its TEST_VARIABLES value.
    #: `Rendered.setting` holds every variable's value.
    variables: Mapping[str, Any] = field(default_factory=dict)

    def with_variables(self, **overrides: Any) -> Setting:
        """This setting with some variables given other values."""
        return replace(self, variables={**self.variables, **overrides})

    def variable(self, name: str) -> Any:
        """The value of variable `name`: given, or else its test value (for one without a
        default); `Rendered.setting.variable` also knows the variables.tf defaults."""
        if name in self.variables:
            return self.variables[name]
        if name in TEST_VARIABLES:
            return TEST_VARIABLES[name]
        raise KeyError(f"variable {name!r} is neither given nor one with a test value")


@dataclass(frozen=True)
class Role:
    """An IAM role as Terraform would create it."""

    name: str
    arn: str
    trust: dict[str, Any]  # the assume_role_policy, rendered
    policies: dict[str, dict[str, Any]]  # inline aws_iam_role_policy name -> document


def render(setting: Setting | None = None, directory: Path = TERRAFORM) -> Rendered:
    """Evaluate the Terraform in `directory` and render its roles and policy documents."""
    return Rendered(_Evaluator(_load(directory), setting or Setting()))


# ------------------------------------------------------------------------------------------------
# Reading the configuration


@dataclass(frozen=True, eq=False)
class _Block:
    """One HCL block: its type, labels, attributes (unevaluated) and nested blocks."""

    kind: str
    labels: tuple[str, ...]
    attributes: Mapping[str, Tree]
    blocks: tuple[_Block, ...]
    file: str
    source: str
    line: int

    def nested(self, kind: str) -> list[_Block]:
        return [block for block in self.blocks if block.kind == kind]

    @property
    def address(self) -> str:
        """`TYPE.NAME` of a resource, `data.TYPE.NAME` of a data source, else the block type."""
        if self.kind == "resource":
            return ".".join(self.labels)
        if self.kind == "data":
            return "data." + ".".join(self.labels)
        return " ".join((self.kind, *self.labels))


@dataclass
class _Config:
    """The top-level blocks of every .tf file of a directory."""

    variables: dict[str, _Block] = field(default_factory=dict)
    locals: dict[str, tuple[_Block, Tree]] = field(default_factory=dict)
    resources: dict[tuple[str, str], _Block] = field(default_factory=dict)
    data: dict[tuple[str, str], _Block] = field(default_factory=dict)
    providers: list[_Block] = field(default_factory=list)


_IGNORED_BLOCKS = {"output", "terraform", "moved", "import", "removed", "check"}


def _load(directory: Path) -> _Config:
    """Parse every .tf file of `directory`, refusing what would change the configuration unseen."""
    if not directory.is_dir():
        raise InvalidTerraform(f"{directory}: no such directory")
    if json_files := sorted(p.name for p in directory.glob("*.tf.json")):
        raise UnsupportedTerraform(f"{directory}: JSON configuration files {json_files}")
    paths = sorted(directory.glob("*.tf"))
    if overrides := [p.name for p in paths if p.stem == "override" or p.stem.endswith("_override")]:
        raise UnsupportedTerraform(f"{directory}: override files {overrides}")
    if not paths:
        raise InvalidTerraform(f"{directory}: no .tf files")
    config = _Config()
    for path in paths:
        for block in _parse_file(path):
            _add_block(config, block)
    return config


def _parse_file(path: Path) -> list[_Block]:
    return list(_parse_text(path.name, path.read_text()))


@lru_cache(maxsize=128)
def _parse_text(file: str, text: str) -> tuple[_Block, ...]:
    """The blocks of one file's text, parsed once per process for every render of that text
    (python-hcl2 takes over a second for infra/terraform, and the suite renders it a dozen
    times). Blocks are immutable (frozen, attributes behind MappingProxyType, lark trees only
    ever read), so every render gets the same ones; an edited file is new text, parsed anew,
    and a text that does not parse is not cached: it raises every time."""
    try:
        tree = hcl2.parses_to_tree(text)
    except LarkError as error:
        raise InvalidTerraform(f"{file}: does not parse: {error}") from None
    (body,) = _trees(tree)
    _, blocks = _parse_body(body, file, text)
    return tuple(blocks)


def _add_block(config: _Config, block: _Block) -> None:
    where = f"{block.file}:{block.line}: {block.address}"
    expected_labels = {"variable": 1, "locals": 0, "resource": 2, "data": 2, "provider": 1}
    if block.kind in _IGNORED_BLOCKS:
        return
    if block.kind == "module":
        raise UnsupportedTerraform(f"{where}: module blocks are not evaluated")
    if block.kind not in expected_labels:
        raise UnsupportedTerraform(f"{where}: unknown top-level block type {block.kind!r}")
    if len(block.labels) != expected_labels[block.kind]:
        raise InvalidTerraform(f"{where}: expects {expected_labels[block.kind]} label(s)")
    if block.kind == "variable":
        _add_once(config.variables, block.labels[0], block, where)
    elif block.kind == "locals":
        if block.blocks:
            raise InvalidTerraform(f"{where}: a locals block holds attributes only")
        for name, tree in block.attributes.items():
            _add_once(config.locals, name, (block, tree), f"{where}: local.{name}")
    elif block.kind == "resource":
        _add_once(config.resources, (block.labels[0], block.labels[1]), block, where)
    elif block.kind == "data":
        _add_once(config.data, (block.labels[0], block.labels[1]), block, where)
    else:
        config.providers.append(block)


def _add_once(into: dict[Any, Any], key: Any, value: Any, where: str) -> None:
    if key in into:
        raise InvalidTerraform(f"{where}: declared twice")
    into[key] = value


def _parse_body(body: Tree, file: str, source: str) -> tuple[dict[str, Tree], list[_Block]]:
    """The attributes and the nested blocks of a block body."""
    attributes: dict[str, Tree] = {}
    blocks: list[_Block] = []
    for child in _trees(body):
        if child.data == "attribute":
            name = _name(child.children[0])
            if name in attributes:
                raise InvalidTerraform(f"{file}:{_line(child)}: attribute {name!r} set twice")
            attributes[name] = child.children[-1]
        else:
            blocks.append(_parse_block(child, file, source))
    return attributes, blocks


def _parse_block(node: Tree, file: str, source: str) -> _Block:
    trees = _trees(node)
    head, *labels, body = trees
    if body.data != "body":
        raise InvalidTerraform(f"{file}:{_line(node)}: a block without a body")
    attributes, blocks = _parse_body(body, file, source)
    return _Block(
        kind=_name(head),
        labels=tuple(_label(label, file) for label in labels),
        attributes=MappingProxyType(attributes),
        blocks=tuple(blocks),
        file=file,
        source=source,
        line=_line(node),
    )


def _label(node: Tree, file: str) -> str:
    if node.data != "string":
        return _name(node)
    parts = [part.children[0] for part in _trees(node)]
    if not all(isinstance(part, Token) and part.type == "STRING_CHARS" for part in parts):
        raise InvalidTerraform(f"{file}:{_line(node)}: a block label must be a plain string")
    return "".join(str(part) for part in parts)


# ------------------------------------------------------------------------------------------------
# Lark tree helpers


def _trees(node: Tree) -> list[Tree]:
    """The child trees of `node`, without tokens and without newlines and comments."""
    return [c for c in node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]


def _tokens(node: Tree) -> list[Token]:
    return [value for value in node.scan_values(lambda v: isinstance(v, Token))]


def _name(node: Tree) -> str:
    """The text of an identifier, keyword or literal_value tree."""
    (token,) = node.children
    return str(token)


def _line(node: Tree) -> int:
    tokens = [t for t in _tokens(node) if t.type != "NL_OR_COMMENT"] or _tokens(node)
    return tokens[0].line if tokens and tokens[0].line is not None else 0


def _source_text(node: Tree, source: str) -> str:
    """The expression as written, on one line."""
    tokens = [t for t in _tokens(node) if t.start_pos is not None and t.end_pos is not None]
    if not tokens:
        return node.data
    start = min(t.start_pos for t in tokens if t.start_pos is not None)
    end = max(t.end_pos for t in tokens if t.end_pos is not None)
    text = " ".join(source[start:end].split())
    return text if len(text) <= 240 else text[:237] + "..."


# ------------------------------------------------------------------------------------------------
# Values


class _Set(tuple[Any, ...]):
    """A Terraform set of strings: distinct elements, iterated in lexical order."""


@dataclass(frozen=True)
class _Instance:
    """One instance of a resource or data block (`key` is its for_each key or count index)."""

    block: _Block
    key: str | int | None

    @property
    def address(self) -> str:
        if self.key is None:
            return self.block.address
        return f"{self.block.address}[{json.dumps(self.key)}]"


def _kind(value: Any) -> str:
    """The Terraform type family of a value, for errors and for typed equality."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _Set):
        return "set"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, _Instance):
        return "resource"
    return type(value).__name__


def _equal(left: Any, right: Any) -> bool:
    """Terraform's `==`: values of different types are never equal (`1 == "1"` is false)."""
    if _kind(left) != _kind(right):
        return False
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(map(_equal, left, right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    return bool(left == right)


def _to_string(value: Any) -> str:
    """Terraform's conversion of a primitive to string (templates and string arguments)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    raise _Problem(EvaluationError, f"a {_kind(value)} value cannot be converted to a string")


def _from_python(value: Any, where: str) -> Any:
    """A variable value given in Python, as a Terraform value."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise InvalidTerraform(f"{where}: map keys must be strings")
        return {key: _from_python(item, where) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_from_python(item, where) for item in value]
    raise UnsupportedTerraform(f"{where}: a {type(value).__name__} value is not supported")


_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.DOTALL)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    """HCL's string escapes."""

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] in "uU" and len(code) > 1:
            return chr(int(code[1:], 16))
        if code in _ESCAPES:
            return _ESCAPES[code]
        raise _Problem(InvalidTerraform, f"invalid escape sequence \\{code}")

    return _ESCAPE.sub(one, text)


class _Problem(Exception):
    """An error not yet located: the nearest expression being evaluated adds where it happened."""

    def __init__(self, kind: type[TerraformIamError], message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


# ------------------------------------------------------------------------------------------------
# Functions


def _list(value: Any, function: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Problem(EvaluationError, f"{function}() needs a list, got a {_kind(value)}")
    return value


def _map(value: Any, function: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Problem(EvaluationError, f"{function}() needs a map or object, got {_kind(value)}")
    return value


def _string(value: Any, function: str) -> str:
    if not isinstance(value, str):
        raise _Problem(EvaluationError, f"{function}() needs a string, got a {_kind(value)}")
    return value


def _concat(*lists: Any) -> list[Any]:
    return [item for value in lists for item in _list(value, "concat")]


def _distinct(items: Any) -> list[Any]:
    found: list[Any] = []
    for item in _list(items, "distinct"):
        if not any(_equal(item, seen) for seen in found):
            found.append(item)
    return found


def _flatten(items: Any) -> list[Any]:
    flat: list[Any] = []
    for item in _list(items, "flatten"):
        if isinstance(item, _Set):
            raise _Problem(UnsupportedTerraform, "flatten() of a set is not supported")
        flat.extend(_flatten(item) if isinstance(item, list) else [item])
    return flat


def _keys(value: Any) -> list[str]:
    return sorted(_map(value, "keys"))


def _values(value: Any) -> list[Any]:
    mapping = _map(value, "values")
    return [mapping[key] for key in sorted(mapping)]


def _contains(collection: Any, value: Any) -> bool:
    if not isinstance(collection, list | _Set):
        raise _Problem(EvaluationError, f"contains() needs a list or set, got {_kind(collection)}")
    if any(_kind(item) != _kind(value) for item in collection):
        raise _Problem(
            UnsupportedTerraform, "contains() with a value of another type than the list"
        )
    return any(_equal(item, value) for item in collection)


def _toset(items: Any) -> _Set:
    if isinstance(items, _Set):
        return items
    elements = _list(items, "toset")
    if not all(isinstance(item, str) for item in elements):
        raise _Problem(UnsupportedTerraform, "toset() of anything but strings is not supported")
    return _Set(sorted(set(elements)))


def _length(value: Any) -> int:
    if isinstance(value, str) and not value.isascii():
        raise _Problem(UnsupportedTerraform, "length() of a non-ASCII string (grapheme clusters)")
    if not isinstance(value, list | dict | _Set | str):
        raise _Problem(EvaluationError, f"length() of a {_kind(value)}")
    return len(value)


def _lookup(mapping: Any, key: Any, *default: Any) -> Any:
    if len(default) > 1:
        raise _Problem(InvalidTerraform, "lookup() takes two or three arguments")
    found = _map(mapping, "lookup")
    if _string(key, "lookup") in found:
        return found[key]
    if not default:
        raise _Problem(EvaluationError, f"lookup(): no key {key!r} and no default")
    return default[0]


def _lower(value: Any) -> str:
    text = _string(value, "lower")
    if not text.isascii():
        raise _Problem(UnsupportedTerraform, "lower() of a non-ASCII string")
    return text.lower()


def _startswith(value: Any, prefix: Any) -> bool:
    return _string(value, "startswith").startswith(_string(prefix, "startswith"))


def _alltrue(items: Any) -> bool:
    elements = list(items) if isinstance(items, _Set) else _list(items, "alltrue")
    if not all(isinstance(item, bool) for item in elements):
        raise _Problem(EvaluationError, "alltrue() needs a list of bools")
    return all(elements)


def _regex(pattern: Any, value: Any) -> str:
    """Terraform's regex() without capture groups (Python's re stands in for RE2 here)."""
    compiled = re.compile(_string(pattern, "regex"))
    if compiled.groups:
        raise _Problem(UnsupportedTerraform, "regex() with capture groups is not supported")
    match = compiled.search(_string(value, "regex"))
    if match is None:
        raise _Problem(EvaluationError, "regex() pattern did not match")
    return match.group(0)


_FUNCTIONS: dict[str, tuple[Callable[..., Any], int | None]] = {
    "alltrue": (_alltrue, 1),
    "concat": (_concat, None),
    "contains": (_contains, 2),
    "distinct": (_distinct, 1),
    "flatten": (_flatten, 1),
    "keys": (_keys, 1),
    "length": (_length, 1),
    "lookup": (_lookup, None),
    "lower": (_lower, 1),
    "regex": (_regex, 2),
    "startswith": (_startswith, 2),
    "toset": (_toset, 1),
    "values": (_values, 1),
}
_SPECIAL_FUNCTIONS = {"can"}  # its argument is evaluated by the evaluator itself

_EXPRESSION_NODES = {
    "arguments",
    "binary_op",
    "binary_operator",
    "binary_term",
    "braces_index",
    "conditional",
    "expr_term",
    "for_cond",
    "for_intro",
    "for_object_expr",
    "for_tuple_expr",
    "function_call",
    "get_attr",
    "get_attr_expr_term",
    "identifier",
    "index_expr_term",
    "int_lit",
    "interpolation",
    "keyword",
    "literal_value",
    "new_line_or_comment",
    "object",
    "object_elem",
    "object_elem_key",
    "short_index",
    "string",
    "string_part",
    "tuple",
    "unary_op",
}
_BINARY_OPERATORS = {"==", "!=", "&&", "||", "<", "<=", ">", ">="}
_STRING_TOKENS = {"STRING_CHARS", "ESCAPED_INTERPOLATION", "ESCAPED_DIRECTIVE"}


def _unsupported_construct(node: Tree) -> str | None:
    """Why `node` (one node, not its children) is outside the subset, or None."""
    tokens = [c for c in node.children if isinstance(c, Token)]
    if node.data not in _EXPRESSION_NODES:
        return f"`{node.data}` expressions are not supported"
    if node.data == "function_call":
        name = _name(node.children[0])
        if any(t.type == "COLONS" for t in tokens):
            return "provider-defined functions are not supported"
        if name not in _FUNCTIONS and name not in _SPECIAL_FUNCTIONS:
            return f"function {name}() is not supported"
    if node.data in {"arguments", "for_object_expr"} and any(t.type == "ELLIPSIS" for t in tokens):
        return "the `...` expansion is not supported"
    if node.data == "binary_operator" and str(tokens[0]) not in _BINARY_OPERATORS:
        return f"operator {tokens[0]} is not supported"
    if node.data == "unary_op" and str(tokens[0]) != "!":
        return f"unary operator {tokens[0]} is not supported"
    if node.data == "string_part" and tokens and tokens[0].type not in _STRING_TOKENS:
        return "template directives (%{...}) are not supported"
    return None


# ------------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class _Scope:
    """Where an expression is evaluated: for errors, and for each/count/for-expression symbols."""

    file: str
    block: str
    attribute: str
    source: str
    each: tuple[str, Any] | None = None
    count: int | None = None
    names: Mapping[str, Any] = field(default_factory=dict)
    references: bool = True  # false in variable defaults, which must be literal

    def bind(self, names: Mapping[str, Any]) -> _Scope:
        return replace(self, names={**self.names, **names})


@dataclass(frozen=True)
class _Expansion:
    """The instances of a block with for_each (keys with their each.value) or count."""

    instances: Mapping[str | int, Any]


_ROLE_ARGUMENTS = {
    "name",
    "assume_role_policy",
    "description",
    "max_session_duration",
    "force_detach_policies",
    "tags",
}
_ROLE_POLICY_ARGUMENTS = {"name", "role", "policy"}
_DOCUMENT_ARGUMENTS = {"source_policy_documents"}
_STATEMENT_ARGUMENTS = {"sid", "effect", "actions", "not_actions", "resources", "not_resources"}
_STATEMENT_BLOCKS = {"principals", "not_principals", "condition"}
_META_ARGUMENTS = {"for_each", "count", "depends_on", "lifecycle", "provider"}
_MODELED_IAM_RESOURCES = {"aws_iam_role", "aws_iam_role_policy", "aws_iam_openid_connect_provider"}
#: Resources whose `policy` argument is a resource policy: rendered into resource_policies.
_RESOURCE_POLICIES = {
    "aws_kms_key",
    "aws_kms_key_policy",
    "aws_s3_bucket_policy",
    "aws_sns_topic",
    "aws_sns_topic_policy",
    "aws_ecr_repository_policy",
}
_SID = re.compile(r"[a-zA-Z0-9]*")
#: Resources that AWS names after one of their arguments: that argument, the ARN AWS gives them
#: and the attributes that equal the name.
_NAMED_RESOURCES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "aws_iam_role": ("name", "arn:{partition}:iam::{account}:role/{name}", ("id", "name")),
    "aws_ecr_repository": (
        "name",
        "arn:{partition}:ecr:{region}:{account}:repository/{name}",
        ("id", "name"),
    ),
    "aws_s3_bucket": ("bucket", "arn:{partition}:s3:::{name}", ("id", "bucket")),
    "aws_cloudwatch_metric_alarm": (
        "alarm_name",
        "arn:{partition}:cloudwatch:{region}:{account}:alarm:{name}",
        ("id", "alarm_name"),
    ),
    "aws_sns_topic": ("name", "arn:{partition}:sns:{region}:{account}:{name}", ("name",)),
}


class _Evaluator:
    """Lazily evaluates the configuration: each local, expansion and attribute at most once."""

    def __init__(self, config: _Config, setting: Setting) -> None:
        self._config = config
        self._setting = setting
        self._cache: dict[str, Any] = {}
        self._evaluating: list[str] = []
        self._checked: dict[int, Tree] = {}  # the trees too, so that no id is reused
        self._variables = self._variable_values()
        self._validate_variables()

    # -- variables, locals, provider ------------------------------------------------------------

    def _variable_values(self) -> dict[str, Any]:
        given = self._setting.variables
        if undeclared := sorted(set(given) - set(self._config.variables)):
            raise InvalidTerraform(f"Setting.variables: undeclared variables {undeclared}")
        values: dict[str, Any] = {}
        for name, block in sorted(self._config.variables.items()):
            where = f"{block.file}:{block.line}: variable.{name}"
            self.only(
                block, {"default", "type", "description", "sensitive", "nullable"}, {"validation"}
            )
            if name in given:
                values[name] = _from_python(given[name], f"Setting.variables[{name!r}]")
            elif "default" in block.attributes:
                scope = self._scope(block, "default", references=False)
                values[name] = self._expression(block.attributes["default"], scope)
            elif name in TEST_VARIABLES:
                values[name] = TEST_VARIABLES[name]
            else:
                raise InvalidTerraform(f"{where}: required, and Setting.variables gives no value")
        return values

    def setting(self) -> Setting:
        """The setting, with every variable's value (defaults included)."""
        variables = MappingProxyType(_plain(self._variables))
        return replace(self._setting, variables=variables)

    def _validate_variables(self) -> None:
        """Check every validation block, as `terraform plan` does before anything else."""
        for name, block in sorted(self._config.variables.items()):
            for index, validation in enumerate(block.nested("validation")):
                self.only(validation, {"condition", "error_message"})
                where = f"validation[{index}]"
                if set(validation.attributes) != {"condition", "error_message"}:
                    raise InvalidTerraform(
                        f"{block.file}:{validation.line}: variable.{name} {where}: needs a "
                        "condition and an error_message"
                    )
                scope = self._scope(block, f"{where}.condition")
                condition = self._expression(validation.attributes["condition"], scope)
                if not isinstance(condition, bool):
                    raise InvalidTerraform(
                        f"{block.file}:{validation.line}: variable.{name} {where}: not a bool"
                    )
                if not condition:
                    message = self._expression(
                        validation.attributes["error_message"],
                        self._scope(block, f"{where}.error_message"),
                    )
                    raise InvalidTerraform(
                        f"{block.file}:{validation.line}: variable.{name}: invalid value "
                        f"{self._variables[name]!r}: {message}"
                    )

    def _local(self, name: str) -> Any:
        if name not in self._config.locals:
            raise _Problem(InvalidTerraform, f"reference to undeclared local value local.{name}")
        block, tree = self._config.locals[name]
        return self._once(
            f"local.{name}", lambda: self._expression(tree, self._scope(block, f"local.{name}"))
        )

    def region(self) -> str:
        """The region of the (single, unaliased) AWS provider configuration."""

        def evaluate() -> str:
            aws = [block for block in self._config.providers if block.labels == ("aws",)]
            if len(aws) != 1 or "alias" in aws[0].attributes:
                raise UnsupportedTerraform(
                    f"{[f'{b.file}:{b.line}' for b in aws]}: exactly one unaliased provider "
                    '"aws" block is supported'
                )
            if "region" not in aws[0].attributes:
                raise UnsupportedTerraform(
                    f'{aws[0].file}:{aws[0].line}: provider "aws" sets no region (it would '
                    "come from the environment)"
                )
            value = self._expression(aws[0].attributes["region"], self._scope(aws[0], "region"))
            if not isinstance(value, str):
                raise InvalidTerraform(f'{aws[0].file}: provider "aws" region is not a string')
            return value

        return str(self._once("provider.aws.region", evaluate))

    # -- blocks and instances -------------------------------------------------------------------

    def blocks(self, kind: str, type_name: str) -> list[_Block]:
        table = self._config.resources if kind == "resource" else self._config.data
        return [block for (t, _), block in sorted(table.items()) if t == type_name]

    def resource_types(self) -> set[str]:
        return {type_name for type_name, _ in self._config.resources}

    def instances(self, block: _Block) -> list[_Instance]:
        expansion = self._expansion(block)
        if expansion is None:
            return [_Instance(block, None)]
        return [_Instance(block, key) for key in expansion.instances]

    def _expansion(self, block: _Block) -> _Expansion | None:
        """The for_each or count instances of a block; None for a single instance."""
        if "provider" in block.attributes:
            raise UnsupportedTerraform(
                f"{block.file}:{block.line}: {block.address}: the provider meta-argument"
            )
        if "for_each" in block.attributes and "count" in block.attributes:
            raise InvalidTerraform(
                f"{block.file}:{block.line}: {block.address}: for_each and count"
            )
        if "for_each" in block.attributes:
            return self._once(f"{block.address} for_each", lambda: self._for_each(block))
        if "count" in block.attributes:
            return self._once(f"{block.address} count", lambda: self._count(block))
        return None

    def _for_each(self, block: _Block) -> _Expansion:
        value = self._expression(block.attributes["for_each"], self._scope(block, "for_each"))
        if isinstance(value, _Set):
            return _Expansion(MappingProxyType({key: key for key in value}))
        if isinstance(value, dict):
            return _Expansion(MappingProxyType({key: value[key] for key in sorted(value)}))
        raise InvalidTerraform(
            f"{block.file}:{block.line}: {block.address}: for_each must be a map or a set of "
            f"strings, not a {_kind(value)}"
        )

    def _count(self, block: _Block) -> _Expansion:
        value = self._expression(block.attributes["count"], self._scope(block, "count"))
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidTerraform(
                f"{block.file}:{block.line}: {block.address}: count must be a whole number >= 0"
            )
        return _Expansion(MappingProxyType({index: None for index in range(value)}))

    def argument(self, instance: _Instance, name: str) -> Any:
        """A configured argument of an instance, evaluated (arguments the AWS stand-in needs)."""
        if name not in instance.block.attributes:
            raise _Problem(UnsupportedTerraform, f"{instance.address} sets no `{name}` argument")
        return self._once(
            f"{instance.address}.{name}",
            lambda: self._expression(
                instance.block.attributes[name], self._instance_scope(instance, name)
            ),
        )

    def attribute(self, instance: _Instance, name: str) -> Any:
        """`instance.name`: an attribute AWS computes, or else a configured argument."""
        computed = self._computed(instance)
        if name in computed:
            return computed[name]()
        if name in instance.block.attributes and name not in _META_ARGUMENTS:
            return self.argument(instance, name)
        known = sorted(set(computed) | (set(instance.block.attributes) - _META_ARGUMENTS))
        raise _Problem(
            UnsupportedTerraform,
            f"attribute `{name}` of {instance.address} is not modeled (modeled: {known})",
        )

    def _computed(self, instance: _Instance) -> Mapping[str, Callable[[], Any]]:
        """The attributes AWS (or the provider) would compute for an instance, by name."""
        mode, type_name = instance.block.kind, instance.block.labels[0]
        if mode == "data":
            return {
                "aws_caller_identity": {"account_id": lambda: self._setting.account_id},
                "aws_partition": {"partition": lambda: self._setting.partition},
                "aws_iam_policy_document": {
                    "json": lambda: json.dumps(self.document(instance), indent=2)
                },
                "aws_iam_openid_connect_provider": {"arn": lambda: self._oidc_arn(instance)},
            }.get(type_name, {})
        if type_name in _NAMED_RESOURCES:
            argument, arn_format, aliases = _NAMED_RESOURCES[type_name]
            name = partial(self._name, instance, argument)
            arn = partial(self._arn, arn_format, name)
            computed = {"arn": arn, **dict.fromkeys(aliases, name)}
            if type_name == "aws_sns_topic":
                computed["id"] = arn
            return computed
        if type_name == "aws_kms_key":
            key_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"terraform:{instance.address}"))
            return {
                "arn": partial(
                    self._arn, "arn:{partition}:kms:{region}:{account}:key/{name}", lambda: key_id
                ),
                "id": lambda: key_id,
                "key_id": lambda: key_id,
            }
        if type_name == "aws_iam_openid_connect_provider":
            return {"arn": lambda: self._oidc_arn(instance), "id": lambda: self._oidc_arn(instance)}
        return {}

    def _arn(self, arn_format: str, name: Callable[[], str]) -> str:
        """`arn_format` with the partition, account, region (if it has one) and `name()`."""
        values = {"partition": self._setting.partition, "account": self._setting.account_id}
        if "{region}" in arn_format:
            values["region"] = self.region()
        return arn_format.format(**values, name=name())

    def _name(self, instance: _Instance, argument: str) -> str:
        """The name AWS gives a resource: its naming argument (generated names are not modeled)."""
        for generated in (f"{argument}_prefix", "path"):
            if generated in instance.block.attributes:
                raise _Problem(
                    UnsupportedTerraform, f"{instance.address}: `{generated}` is not modeled"
                )
        return _to_string(self.argument(instance, argument))

    def _oidc_arn(self, instance: _Instance) -> str:
        """An OIDC provider's ARN: from its url (a data source may name its arn instead)."""
        if instance.block.kind == "data" and "arn" in instance.block.attributes:
            return _to_string(self.argument(instance, "arn"))
        url = _to_string(self.argument(instance, "url"))
        if not url.startswith("https://"):
            raise _Problem(InvalidTerraform, f"{instance.address}: the url must start https://")
        host = url.removeprefix("https://").rstrip("/")
        return self._arn("arn:{partition}:iam::{account}:oidc-provider/{name}", lambda: host)

    # -- policy documents -----------------------------------------------------------------------

    def document(self, instance: _Instance) -> dict[str, Any]:
        """A `data "aws_iam_policy_document"` instance, rendered as the AWS provider does."""
        key = f"{instance.address} document"
        return dict(self._once(key, lambda: self.at(instance, lambda: self._render(instance))))

    @staticmethod
    def at(instance: _Instance, compute: Callable[[], Any]) -> Any:
        """`compute()`, locating at `instance` a problem that arose outside any expression."""
        try:
            return compute()
        except _Problem as problem:
            where = f"{instance.block.file}:{instance.block.line}: {instance.address}"
            raise problem.kind(f"{where}: {problem}") from None

    @staticmethod
    def _where_in(instance: _Instance, block: _Block, label: str) -> str:
        return f"{block.file}:{block.line}: {instance.address} {label}"

    def _render(self, instance: _Instance) -> dict[str, Any]:
        block = instance.block
        self.only(block, _DOCUMENT_ARGUMENTS, {"statement"})
        merged: list[dict[str, Any]] = []
        source_sids: set[str] = set()
        sources = self._optional(instance, block, "source_policy_documents", "", [])
        label = "source_policy_documents"
        if not isinstance(sources, list):
            raise InvalidTerraform(f"{self._where_in(instance, block, label)}: not a list")
        for index, text in enumerate(sources):
            if text is None:
                continue  # the provider skips null entries
            where = self._where_in(instance, block, f"{label}[{index}]")
            statements = self._policy(text, where)
            for statement in statements.get("Statement", []):
                sid = statement.get("Sid", "")
                if sid in source_sids:
                    raise InvalidTerraform(
                        f"{block.file}:{block.line}: {instance.address}: duplicate Sid {sid!r} "
                        "in source_policy_documents"
                    )
                if sid:
                    source_sids.add(sid)
            _merge(merged, statements.get("Statement", []))
        own = [
            self._statement(instance, statement, f"statement[{index}]")
            for index, statement in enumerate(block.nested("statement"))
        ]
        sids = [statement["Sid"] for statement in own if statement.get("Sid")]
        if len(sids) != len(set(sids)):
            raise InvalidTerraform(f"{block.file}:{block.line}: {instance.address}: duplicate Sid")
        _merge(merged, own)
        document: dict[str, Any] = {"Version": "2012-10-17"}
        if merged:
            document["Statement"] = merged
        return document

    def _statement(self, instance: _Instance, block: _Block, label: str) -> dict[str, Any]:
        self.only(block, _STATEMENT_ARGUMENTS, _STATEMENT_BLOCKS)
        sid = self._text(instance, block, "sid", label, "")
        effect = self._text(instance, block, "effect", label, "Allow")
        where = self._where_in(instance, block, label)
        if not _SID.fullmatch(sid):
            raise InvalidTerraform(f"{where}: sid {sid!r} must be alphanumeric")
        if effect not in {"Allow", "Deny"}:
            raise InvalidTerraform(f"{where}: effect {effect!r} must be Allow or Deny")
        statement: dict[str, Any] = {"Sid": sid} if sid else {}
        statement["Effect"] = effect
        for argument, key, variables in (
            ("actions", "Action", False),
            ("not_actions", "NotAction", False),
            ("resources", "Resource", True),
            ("not_resources", "NotResource", True),
        ):
            values = self._string_set(instance, block, argument, label, variables)
            if values:
                statement[key] = values
        for kind, key in (("principals", "Principal"), ("not_principals", "NotPrincipal")):
            principals = self._principals(instance, block.nested(kind), f"{label}.{kind}")
            if principals is not None:
                statement[key] = principals
        conditions = self._conditions(instance, block.nested("condition"), f"{label}.condition")
        if conditions:
            statement["Condition"] = conditions
        return statement

    def _principals(
        self, instance: _Instance, blocks: list[_Block], label: str
    ) -> str | dict[str, list[str]] | None:
        entries: list[tuple[str, list[str]]] = []
        for index, block in enumerate(blocks):
            self.only(block, {"type", "identifiers"})
            where = f"{label}[{index}]"
            principal = self._text(instance, block, "type", where)
            identifiers = self._string_set(instance, block, "identifiers", where, True, True)
            if (principal, identifiers) not in entries:  # a set of blocks in the provider
                entries.append((principal, identifiers))
        if not entries:
            return None
        if len(entries) == 1 and entries[0] == ("*", ["*"]):
            return "*"
        merged: dict[str, list[str]] = {}
        for principal, identifiers in entries:
            merged.setdefault(principal, []).extend(identifiers)
        return dict(sorted(merged.items()))

    def _conditions(
        self, instance: _Instance, blocks: list[_Block], label: str
    ) -> dict[str, dict[str, list[str]]]:
        entries: list[tuple[str, str, list[str]]] = []
        for index, block in enumerate(blocks):
            self.only(block, {"test", "variable", "values"})
            where = f"{label}[{index}]"
            test = self._text(instance, block, "test", where)
            variable = self._text(instance, block, "variable", where)
            values = self._required(instance, block, "values", where)
            located = self._where_in(instance, block, f"{where}.values")
            if not isinstance(values, list | _Set) or not values:
                raise InvalidTerraform(f"{located}: must be a non-empty list")
            strings = [_variables(_located_string(value, located)) for value in values]
            if (test, variable, strings) not in entries:  # a set of blocks in the provider
                entries.append((test, variable, strings))
        merged: dict[str, dict[str, list[str]]] = {}
        for test, variable, values in entries:
            merged.setdefault(test, {}).setdefault(variable, []).extend(values)
        return {test: dict(sorted(merged[test].items())) for test in sorted(merged)}

    def _string_set(
        self,
        instance: _Instance,
        block: _Block,
        name: str,
        label: str,
        variables: bool,
        required: bool = False,
    ) -> list[str]:
        """A set-of-strings argument as the provider writes it: distinct, reverse-sorted."""
        value = (
            self._required(instance, block, name, label)
            if required
            else self._optional(instance, block, name, label, [])
        )
        located = self._where_in(instance, block, f"{label}.{name}")
        if not isinstance(value, list | _Set):
            raise InvalidTerraform(f"{located}: must be a list")
        strings = {_located_string(item, located) for item in value}
        return [_variables(s) if variables else s for s in sorted(strings, reverse=True)]

    def _text(
        self, instance: _Instance, block: _Block, name: str, label: str, default: str | None = None
    ) -> str:
        """A string argument (required without a default), converted as Terraform does."""
        if default is None:
            value = self._required(instance, block, name, label)
        else:
            value = self._optional(instance, block, name, label, default)
        return _located_string(value, self._where_in(instance, block, f"{label}.{name}"))

    def _optional(
        self, instance: _Instance, block: _Block, name: str, label: str, default: Any
    ) -> Any:
        """An optional argument: `default` when it is absent or null, as in Terraform."""
        if name not in block.attributes:
            return default
        value = self._required(instance, block, name, label)
        return default if value is None else value

    def _required(self, instance: _Instance, block: _Block, name: str, label: str) -> Any:
        if name not in block.attributes:
            where = self._where_in(instance, block, label)
            raise InvalidTerraform(f"{where}: `{name}` is required")
        attribute = f"{label}.{name}" if label else name
        return self._expression(block.attributes[name], self._instance_scope(instance, attribute))

    @staticmethod
    def _policy(text: Any, where: str) -> dict[str, Any]:
        """A JSON policy document string (as `.json` gives), parsed."""
        if not isinstance(text, str):
            raise InvalidTerraform(f"{where}: a policy must be a JSON string, not {_kind(text)}")
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidTerraform(f"{where}: not JSON: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("Statement", []), list):
            raise InvalidTerraform(f"{where}: not a policy document")
        return document

    def policy(self, instance: _Instance, name: str) -> dict[str, Any]:
        """The JSON policy argument `name` of a resource instance, parsed."""
        text = self.at(instance, lambda: self.argument(instance, name))
        return self._policy(text, self._where_in(instance, instance.block, name))

    @staticmethod
    def only(block: _Block, arguments: Collection[str], blocks: Collection[str] = ()) -> None:
        """Refuse arguments and nested blocks whose meaning is not modeled."""
        allowed = set(arguments) | (_META_ARGUMENTS - {"provider"})
        extra = sorted(set(block.attributes) - allowed) + sorted(
            {nested.kind for nested in block.blocks} - set(blocks) - {"lifecycle"}
        )
        if extra:
            raise UnsupportedTerraform(
                f"{block.file}:{block.line}: {block.address}: {extra} not modeled "
                f"(supported here: {sorted({*arguments, *blocks})})"
            )

    # -- expressions ----------------------------------------------------------------------------

    def evaluate(self, text: str) -> Any:
        """A Terraform expression, evaluated at the top level of the configuration."""
        source = f"value = {text}\n"
        try:
            tree = hcl2.parses_to_tree(source)
        except LarkError as error:
            raise InvalidTerraform(f"expression {text!r} does not parse: {error}") from None
        (body,) = _trees(tree)
        (attribute,) = _trees(body)
        scope = _Scope(file="<expression>", block="Rendered.evaluate", attribute="", source=source)
        return self._expression(attribute.children[-1], scope)

    def _scope(self, block: _Block, attribute: str, *, references: bool = True) -> _Scope:
        return _Scope(block.file, block.address, attribute, block.source, references=references)

    def _instance_scope(self, instance: _Instance, attribute: str) -> _Scope:
        scope = replace(self._scope(instance.block, attribute), block=instance.address)
        expansion = self._expansion(instance.block)
        if expansion is None:
            return scope
        key = instance.key
        if isinstance(key, int):
            return replace(scope, count=key)
        if key is None:
            raise _Problem(InvalidTerraform, f"{instance.address}: an instance without a key")
        return replace(scope, each=(key, expansion.instances[key]))

    def _once(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()`, cached under `key`, refusing a value that depends on itself."""
        if key in self._cache:
            return self._cache[key]
        if key in self._evaluating:
            cycle = " -> ".join([*self._evaluating[self._evaluating.index(key) :], key])
            raise InvalidTerraform(f"cycle: {cycle}")
        self._evaluating.append(key)
        try:
            value = compute()
        finally:
            self._evaluating.pop()
        self._cache[key] = value
        return value

    def _expression(self, tree: Tree, scope: _Scope) -> Any:
        """Check the whole expression (the branches a conditional does not take included):
        every construct in the subset, every reference declared; then evaluate it."""
        if id(tree) not in self._checked:
            symbols = set(scope.names) | {
                _name(symbol)
                for intro in tree.find_data("for_intro")
                for symbol in _trees(intro)
                if symbol.data == "identifier"
            }
            for node in tree.iter_subtrees_topdown():
                reason = _unsupported_construct(node)
                if reason:
                    raise UnsupportedTerraform(self._where(node, scope, reason))
                if node.data in {"get_attr_expr_term", "index_expr_term"}:
                    reason = self._undeclared(*_chain(node), symbols)
                    if reason:
                        raise InvalidTerraform(self._where(node, scope, reason))
            self._checked[id(tree)] = tree
        return self._eval(tree, scope)

    def _undeclared(
        self, root: Tree, steps: list[tuple[str, Any]], symbols: Collection[str]
    ) -> str | None:
        """What a traversal refers to that the configuration does not declare, if anything."""
        if root.data != "identifier" or _name(root) in symbols:
            return None
        name = _name(root)
        attributes = list(itertools.takewhile(lambda step: step[0] == "attr", steps))
        names = [str(payload) for _, payload in attributes]
        if name == "var" and names and names[0] not in self._variables:
            return f"reference to undeclared variable var.{names[0]}"
        if name == "local" and names and names[0] not in self._config.locals:
            return f"reference to undeclared local value local.{names[0]}"
        if name == "data" and len(names) >= 2 and (names[0], names[1]) not in self._config.data:
            return f"reference to undeclared data source data.{names[0]}.{names[1]}"
        special = {"var", "local", "data", "each", "count", "path", "terraform", "self", "module"}
        if name not in special and names and (name, names[0]) not in self._config.resources:
            return f"reference to undeclared resource {name}.{names[0]}"
        return None

    def _where(self, node: Tree, scope: _Scope, message: str) -> str:
        text = _source_text(node, scope.source)
        where = " ".join(part for part in (scope.block, scope.attribute) if part)
        return f"{scope.file}:{_line(node)}: {where}: {message}: `{text}`"

    def _eval(self, node: Tree, scope: _Scope) -> Any:
        try:
            return self._dispatch(node, scope)
        except _Problem as problem:
            raise problem.kind(self._where(node, scope, problem.message)) from None

    def _dispatch(self, node: Tree, scope: _Scope) -> Any:
        kind = node.data
        if kind == "expr_term":
            (inner,) = _trees(node)
            if inner.data in {"identifier", "get_attr_expr_term", "index_expr_term"}:
                return self._traversal(node, scope)
            return self._eval(inner, scope)
        if kind == "conditional":
            condition, when_true, when_false = _trees(node)
            chosen = self._bool(self._eval(condition, scope), "a condition")
            return self._eval(when_true if chosen else when_false, scope)
        if kind == "binary_op":
            return self._binary(node, scope)
        if kind == "unary_op":
            return not self._bool(self._eval(_trees(node)[0], scope), "the operand of !")
        if kind == "int_lit":
            return int(_name(node))
        if kind == "literal_value":
            return {"true": True, "false": False, "null": None}[_name(node)]
        if kind == "string":
            return self._template(node, scope)
        if kind == "tuple":
            return [self._eval(item, scope) for item in _trees(node)]
        if kind == "object":
            return self._object(node, scope)
        if kind == "function_call":
            return self._call(node, scope)
        if kind in {"for_tuple_expr", "for_object_expr"}:
            return self._for(node, scope)
        if kind in {"identifier", "get_attr_expr_term", "index_expr_term"}:
            return self._traversal(node, scope)
        raise _Problem(UnsupportedTerraform, f"`{kind}` expressions are not supported")

    @staticmethod
    def _bool(value: Any, what: str) -> bool:
        if not isinstance(value, bool):
            raise _Problem(EvaluationError, f"{what} must be a bool, not a {_kind(value)}")
        return value

    def _binary(self, node: Tree, scope: _Scope) -> Any:
        # The grammar encodes precedence (|| < && < == != < comparisons), so each binary_op is one
        # operation.
        left_tree, term = _trees(node)
        operator_tree, right_tree = _trees(term)
        operator = _name(operator_tree)
        left, right = self._eval(left_tree, scope), self._eval(right_tree, scope)
        if operator == "==":
            return _equal(left, right)
        if operator == "!=":
            return not _equal(left, right)
        if operator in ("<", "<=", ">", ">="):
            for side, value in (("left", left), ("right", right)):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise _Problem(
                        EvaluationError,
                        f"the {side} operand of {operator} must be a number, not a {_kind(value)}",
                    )
            return {"<": left < right, "<=": left <= right, ">": left > right,
                    ">=": left >= right}[operator]  # fmt: skip
        left = self._bool(left, f"the left operand of {operator}")
        right = self._bool(right, f"the right operand of {operator}")
        return (left and right) if operator == "&&" else (left or right)

    def _template(self, node: Tree, scope: _Scope) -> Any:
        parts = [part.children[0] for part in _trees(node)]
        if len(parts) == 1 and isinstance(parts[0], Tree):
            return self._eval(_trees(parts[0])[0], scope)  # "${x}" is x itself, of any type
        text: list[str] = []
        for part in parts:
            if isinstance(part, Tree):
                text.append(_to_string(self._eval(_trees(part)[0], scope)))
            elif part.type == "STRING_CHARS":
                text.append(_unescape(str(part)))
            else:  # $${ and %%{ escape an interpolation or a directive
                text.append(str(part)[1:])
        return "".join(text)

    def _object(self, node: Tree, scope: _Scope) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for element in _trees(node):
            key_tree, value_tree = _trees(element)
            (key_node,) = _trees(key_tree)
            if key_node.data == "keyword":
                key = _name(key_node)
            elif (
                key_node.data == "expr_term"
                and not any(isinstance(c, Token) for c in key_node.children)
                and _trees(key_node)[0].data == "identifier"
            ):
                key = _name(_trees(key_node)[0])  # a bare name is the key itself
            else:
                key = _to_string(self._eval(key_node, scope))
            if key in result:
                raise _Problem(InvalidTerraform, f"duplicate object key {key!r}")
            result[key] = self._eval(value_tree, scope)
        return result

    def _call(self, node: Tree, scope: _Scope) -> Any:
        name = _name(node.children[0])
        arguments = [tree for tree in _trees(node)[1:] if tree.data == "arguments"]
        argument_trees = _trees(arguments[0]) if arguments else []
        if name == "can":
            if len(argument_trees) != 1:
                raise _Problem(InvalidTerraform, "can() takes one argument")
            try:
                self._eval(argument_trees[0], scope)
            except EvaluationError:
                return False
            return True
        function, arity = _FUNCTIONS[name]
        if arity is not None and len(argument_trees) != arity:
            raise _Problem(InvalidTerraform, f"{name}() takes {arity} argument(s)")
        return function(*(self._eval(tree, scope) for tree in argument_trees))

    def _for(self, node: Tree, scope: _Scope) -> Any:
        intro, *body = _trees(node)
        *symbols, collection_tree = _trees(intro)
        names = [_name(symbol) for symbol in symbols]
        condition = body.pop() if body[-1].data == "for_cond" else None
        collection = self._eval(collection_tree, scope)
        items: list[Any] = []
        result: dict[str, Any] = {}
        for key, value in _iterate(collection):
            inner = scope.bind(
                {names[0]: key, names[1]: value} if len(names) == 2 else {names[0]: value}
            )
            if condition is not None:
                (condition_tree,) = _trees(condition)
                if not self._bool(self._eval(condition_tree, inner), "a for `if` condition"):
                    continue
            if node.data == "for_tuple_expr":
                items.append(self._eval(body[0], inner))
                continue
            element_key = _to_string(self._eval(body[0], inner))
            if element_key in result:
                raise _Problem(EvaluationError, f"duplicate object key {element_key!r}")
            result[element_key] = self._eval(body[1], inner)
        return items if node.data == "for_tuple_expr" else result

    # -- references -----------------------------------------------------------------------------

    def _traversal(self, node: Tree, scope: _Scope) -> Any:
        root, steps = _chain(node)
        if root.data != "identifier":
            return self._apply(self._eval(root, scope), steps, scope)
        return self._resolve(_name(root), steps, scope)

    def _resolve(self, root: str, steps: list[tuple[str, Any]], scope: _Scope) -> Any:
        if root in scope.names:
            return self._apply(scope.names[root], steps, scope)
        if not scope.references:
            raise _Problem(InvalidTerraform, "a variable default cannot refer to other values")
        if root in {"path", "terraform", "self", "module"}:
            raise _Problem(UnsupportedTerraform, f"`{root}.` references are not supported")
        if root in {"each", "count"}:
            return self._apply(self._iteration(root, steps, scope), steps[1:], scope)
        name, rest = _attribute_step(root, steps)
        if root == "var":
            if name not in self._variables:
                raise _Problem(InvalidTerraform, f"reference to undeclared variable var.{name}")
            return self._apply(self._variables[name], rest, scope)
        if root == "local":
            return self._apply(self._local(name), rest, scope)
        if root == "data":
            label, rest = _attribute_step(f"data.{name}", rest)
            block = self._config.data.get((name, label))
            if block is None:
                raise _Problem(
                    InvalidTerraform, f"reference to undeclared data source data.{name}.{label}"
                )
            return self._resource(block, rest, scope)
        block = self._config.resources.get((root, name))
        if block is None:
            raise _Problem(InvalidTerraform, f"reference to undeclared resource {root}.{name}")
        return self._resource(block, rest, scope)

    @staticmethod
    def _iteration(root: str, steps: list[tuple[str, Any]], scope: _Scope) -> Any:
        name, _ = _attribute_step(root, steps)
        if root == "each":
            if scope.each is None:
                raise _Problem(InvalidTerraform, "each. is only available in a for_each block")
            if name not in {"key", "value"}:
                raise _Problem(InvalidTerraform, f"each.{name}: only each.key and each.value")
            return scope.each[0] if name == "key" else scope.each[1]
        if scope.count is None:
            raise _Problem(InvalidTerraform, "count. is only available in a block with count")
        if name != "index":
            raise _Problem(InvalidTerraform, f"count.{name}: only count.index")
        return scope.count

    def _resource(self, block: _Block, steps: list[tuple[str, Any]], scope: _Scope) -> Any:
        """A reference to a resource or data block: an instance or, unindexed, all of them."""
        expansion = self._expansion(block)
        if expansion is None:
            if steps and steps[0][0] == "index":
                raise _Problem(InvalidTerraform, f"{block.address} has neither count nor for_each")
            return self._apply(_Instance(block, None), steps, scope)
        if not steps:
            instances = {key: _Instance(block, key) for key in expansion.instances}
            return instances if "for_each" in block.attributes else list(instances.values())
        if steps[0][0] != "index":
            raise _Problem(
                InvalidTerraform, f"{block.address} has count or for_each: name an instance"
            )
        key = self._index_key(steps[0][1], scope)
        if _kind(key) != ("number" if "count" in block.attributes else "string"):
            raise _Problem(EvaluationError, f"{block.address}[{key!r}]: wrong type of key")
        if key not in expansion.instances:
            raise _Problem(EvaluationError, f"{block.address} has no instance [{key!r}]")
        return self._apply(_Instance(block, key), steps[1:], scope)

    def _apply(self, value: Any, steps: list[tuple[str, Any]], scope: _Scope) -> Any:
        for kind, payload in steps:
            if kind == "attr":
                value = self._get_attribute(value, payload)
            else:
                value = _index(value, self._index_key(payload, scope))
        return value

    def _index_key(self, payload: Any, scope: _Scope) -> Any:
        return payload if isinstance(payload, int) else self._eval(payload, scope)

    def _get_attribute(self, value: Any, name: str) -> Any:
        if isinstance(value, _Instance):
            return self.attribute(value, name)
        if not isinstance(value, dict):
            raise _Problem(EvaluationError, f"a {_kind(value)} has no attribute `{name}`")
        if name not in value:
            raise _Problem(EvaluationError, f"the object has no attribute `{name}`")
        return value[name]


def _chain(node: Tree) -> tuple[Tree, list[tuple[str, Any]]]:
    """A traversal `root.a[b].c` as its root and its steps ("attr", name) / ("index", tree|int)."""
    steps: list[tuple[str, Any]] = []
    while True:
        if node.data == "expr_term":
            (node,) = _trees(node)
            continue
        if node.data == "get_attr_expr_term":
            inner, get_attr = _trees(node)
            steps.append(("attr", _name(_trees(get_attr)[0])))
        elif node.data == "index_expr_term":
            inner, index = _trees(node)
            if index.data == "short_index":
                steps.append(("index", int(str(index.children[-1]))))
            else:
                steps.append(("index", _trees(index)[0]))
        else:
            steps.reverse()
            return node, steps
        node = inner


def _attribute_step(root: str, steps: list[tuple[str, Any]]) -> tuple[str, list[tuple[str, Any]]]:
    if not steps or steps[0][0] != "attr":
        raise _Problem(InvalidTerraform, f"`{root}` must be followed by .NAME")
    return str(steps[0][1]), steps[1:]


def _index(value: Any, key: Any) -> Any:
    if isinstance(value, list):
        if _kind(key) != "number":
            raise _Problem(EvaluationError, f"a list index must be a number, not {_kind(key)}")
        if not 0 <= key < len(value):
            raise _Problem(EvaluationError, f"index {key} out of range (length {len(value)})")
        return value[key]
    if isinstance(value, dict):
        if not isinstance(key, str):
            raise _Problem(EvaluationError, f"a map key must be a string, not {_kind(key)}")
        if key not in value:
            raise _Problem(EvaluationError, f"the map has no key {key!r}")
        return value[key]
    raise _Problem(EvaluationError, f"a {_kind(value)} cannot be indexed")


def _iterate(collection: Any) -> Iterator[tuple[Any, Any]]:
    """The (key, value) pairs a `for` expression visits, in Terraform's order."""
    if isinstance(collection, _Set):
        return ((item, item) for item in collection)
    if isinstance(collection, list):
        return enumerate(collection)
    if isinstance(collection, dict):
        return ((key, collection[key]) for key in sorted(collection))
    raise _Problem(EvaluationError, f"cannot iterate over a {_kind(collection)}")


def _located_string(value: Any, where: str) -> str:
    try:
        return _to_string(value)
    except _Problem as problem:
        raise problem.kind(f"{where}: {problem}") from None


def _variables(text: str) -> str:
    """`&{aws:username}` is how HCL writes the IAM policy variable `${aws:username}`."""
    return text.replace("&{", "${")


def _merge(statements: list[dict[str, Any]], new: Sequence[dict[str, Any]]) -> None:
    """The provider's IAMPolicyDoc.Merge: a statement replaces the one with its Sid, in place."""
    for statement in new:
        sid = statement.get("Sid", "")
        position = next(
            (i for i, existing in enumerate(statements) if sid and existing.get("Sid") == sid),
            None,
        )
        if position is None:
            statements.append(statement)
        else:
            statements[position] = statement


# ------------------------------------------------------------------------------------------------
# The result


class Rendered:
    """The IAM side of the configuration: roles, policy documents and resource policies."""

    def __init__(self, evaluator: _Evaluator) -> None:
        self._evaluator = evaluator
        #: The account, partition and every variable's value the rendering used.
        self.setting: Setting = evaluator.setting()
        #: Every `data "aws_iam_policy_document"`, keyed `NAME` or `NAME["KEY"]` / `NAME[0]`.
        self.documents: dict[str, dict[str, Any]] = self._documents()
        #: Every role by name, with its trust policy and its inline policies.
        self.roles: dict[str, Role] = self._roles()
        #: Resource policies (the KMS key's, the bucket's...) keyed by the address that sets them.
        self.resource_policies: dict[str, dict[str, Any]] = self._resource_policies()
        #: The name of every CloudWatch metric alarm (`aws_cloudwatch_metric_alarm` instance).
        self.alarms: list[str] = self._alarms()

    @property
    def region(self) -> str:
        """The region of the AWS provider configuration."""
        return self._evaluator.region()

    def arn(self, address: str) -> str:
        """The ARN of a resource or data instance, e.g. `aws_iam_role.deployer["staging"]`."""
        value = self.evaluate(f"{address}.arn")
        if not isinstance(value, str):
            raise InvalidTerraform(f"{address}.arn is not a string")
        return value

    def evaluate(self, expression: str) -> Any:
        """Any expression of the subset, e.g. `local.readable_endpoints`."""
        return _plain(self._evaluator.evaluate(expression))

    def _documents(self) -> dict[str, dict[str, Any]]:
        evaluator = self._evaluator
        documents: dict[str, dict[str, Any]] = {}
        for block in evaluator.blocks("data", "aws_iam_policy_document"):
            for instance in evaluator.instances(block):
                key = instance.address.removeprefix("data.aws_iam_policy_document.")
                documents[key] = json.loads(json.dumps(evaluator.document(instance)))
        return documents

    def _roles(self) -> dict[str, Role]:
        evaluator = self._evaluator
        unmodeled = sorted(
            type_name
            for type_name in evaluator.resource_types()
            if type_name.startswith("aws_iam_") and type_name not in _MODELED_IAM_RESOURCES
        )
        if unmodeled:
            raise UnsupportedTerraform(f"IAM resource types that are not modeled: {unmodeled}")
        roles: dict[str, Role] = {}
        for block in evaluator.blocks("resource", "aws_iam_role"):
            evaluator.only(block, _ROLE_ARGUMENTS)
            for instance in evaluator.instances(block):
                where = f"{block.file}:{block.line}: {instance.address}"
                name = str(evaluator.at(instance, partial(evaluator.attribute, instance, "name")))
                if name in roles:
                    raise InvalidTerraform(f"{where}: a second role named {name!r}")
                roles[name] = Role(
                    name=name,
                    arn=str(evaluator.at(instance, partial(evaluator.attribute, instance, "arn"))),
                    trust=evaluator.policy(instance, "assume_role_policy"),
                    policies={},
                )
        for block in evaluator.blocks("resource", "aws_iam_role_policy"):
            evaluator.only(block, _ROLE_POLICY_ARGUMENTS)
            for instance in evaluator.instances(block):
                where = f"{block.file}:{block.line}: {instance.address}"
                role, name = (
                    _located_string(
                        evaluator.at(instance, partial(evaluator.argument, instance, argument)),
                        f"{where}.{argument}",
                    )
                    for argument in ("role", "name")
                )
                if role not in roles:
                    raise UnsupportedTerraform(
                        f"{where}: role {role!r} is not a role this configuration creates"
                    )
                if name in roles[role].policies:
                    raise InvalidTerraform(f"{where}: role {role} has two policies {name!r}")
                roles[role].policies[name] = evaluator.policy(instance, "policy")
        return dict(sorted(roles.items()))

    def _alarms(self) -> list[str]:
        evaluator = self._evaluator
        return [
            _located_string(
                evaluator.at(instance, partial(evaluator.argument, instance, "alarm_name")),
                f"{instance.address}.alarm_name",
            )
            for block in evaluator.blocks("resource", "aws_cloudwatch_metric_alarm")
            for instance in evaluator.instances(block)
        ]

    def _resource_policies(self) -> dict[str, dict[str, Any]]:
        evaluator = self._evaluator
        policies: dict[str, dict[str, Any]] = {}
        for type_name in sorted(_RESOURCE_POLICIES & evaluator.resource_types()):
            for block in evaluator.blocks("resource", type_name):
                if "policy" not in block.attributes:
                    continue
                for instance in evaluator.instances(block):
                    policies[instance.address] = evaluator.policy(instance, "policy")
        return policies


def _plain(value: Any) -> Any:
    """A Terraform value as plain Python: sets become sorted lists, instances their addresses."""
    if isinstance(value, _Set):
        return list(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, _Instance):
        return value.address
    return value


__all__ = [
    "TERRAFORM",
    "TEST_VARIABLES",
    "EvaluationError",
    "InvalidTerraform",
    "Rendered",
    "Role",
    "Setting",
    "TerraformIamError",
    "UnsupportedTerraform",
    "render",
]
