"""GLIMMER patterns: generation, the split/kernel/merge interface, and artefacts."""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.strategies_kernels import artefact_fields, batch_params, pattern_configs
from vsm.errors import MalformedDataError, VsmError
from vsm.kernels import KernelError
from vsm.kernels._artefact import (
    ArtefactBodyError,
    ArtefactError,
    ArtefactHashError,
    ArtefactHeaderError,
    ArtefactJSONError,
    ArtefactMetadataError,
    pattern_body,
    pattern_from_body,
    read_artefact,
    write_artefact,
)
from vsm.kernels._patterns import (
    MAX_BATCH,
    Pattern,
    PatternConfig,
    PatternType,
    generate_batch,
    generate_pattern,
    pattern_kernel,
    pattern_merge,
    pattern_split,
)

# ---------------------------------------------------------------- generation


@given(pattern_configs())
def test_vertices_are_finite_inside_the_unit_square_and_counted(config: PatternConfig) -> None:
    """Every vertex is finite and in [-1, 1]², and there are as many as the config says."""
    v = generate_pattern(config).vertices
    assert v.shape == (config.vertex_count, 2)
    assert v.dtype == np.float64
    assert np.isfinite(v).all()
    assert np.abs(v).max() <= 1.0


@given(pattern_configs())
def test_generation_is_deterministic(config: PatternConfig) -> None:
    """One config, drawn twice, gives bit-identical vertices and equal digests."""
    first, second = generate_pattern(config), generate_pattern(config)
    assert first.vertices.tobytes() == second.vertices.tobytes()
    assert first == second
    assert first.digest() == second.digest()


@given(pattern_configs(), st.integers(0, 2**64 - 1))
def test_the_seed_matters(config: PatternConfig, other: int) -> None:
    """Another seed gives other vertices, for every type."""
    if other == config.seed:
        other = (other + 1) % 2**64
    changed = config.model_copy(update={"seed": other})
    first, second = generate_pattern(config), generate_pattern(changed)
    assert not np.array_equal(first.vertices, second.vertices)
    assert first.digest() != second.digest()


@pytest.mark.parametrize(
    ("complexity", "vertices", "count", "harmonics"),
    [
        (1e-9, None, 64, 1),
        (0.999, None, 128, 1),
        (1.0, None, 128, 2),
        (3.5, None, 724, 4),
        (10.0, None, 65_536, 11),
        (10.0, 3, 3, 11),
    ],
)
def test_complexity_sets_vertices_and_harmonics(
    complexity: float, vertices: int | None, count: int, harmonics: int
) -> None:
    """Vertices are round(64 * 2**c) unless overridden; harmonics are 1 + floor(c)."""
    config = PatternConfig(type=PatternType.SPIRAL, complexity=complexity, vertices=vertices)
    assert config.vertex_count == count
    assert config.harmonic_count == harmonics
    assert generate_pattern(config).vertices.shape == (count, 2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("complexity", 0),
        ("complexity", -1.0),
        ("complexity", 10.5),
        ("complexity", math.nan),
        ("complexity", "1"),
        ("complexity", True),
        ("seed", -1),
        ("seed", 2**64),
        ("seed", 1.5),
        ("vertices", 2),
        ("vertices", 1_000_001),
        ("type", "hexagon"),
        ("colour", "red"),
    ],
)
def test_a_bad_config_names_its_field(field: str, value: object) -> None:
    """Out-of-range or mistyped values, and unknown fields, are refused by name."""
    data: dict[str, Any] = {"type": "rose", "complexity": 1.0, field: value}
    with pytest.raises(ValidationError) as caught:
        PatternConfig.model_validate(data)
    assert caught.value.errors()[0]["loc"][0] == field


def test_vertices_are_read_only() -> None:
    """A pattern's vertices cannot be written, even through the array passed in."""
    config = PatternConfig(type=PatternType.LATTICE, complexity=1.0, vertices=4)
    source = np.zeros((4, 2))
    pattern = Pattern(config, source)
    source[0, 0] = 0.5
    assert pattern.vertices[0, 0] == 0.0
    with pytest.raises(ValueError, match="read-only"):
        pattern.vertices[0, 0] = 1.0


@pytest.mark.parametrize(
    "vertices",
    [np.zeros((5, 2)), np.zeros((4, 3)), np.full((4, 2), 1.5), np.full((4, 2), np.nan)],
)
def test_a_pattern_refuses_vertices_that_break_its_invariants(vertices: np.ndarray) -> None:
    """Wrong shape, out of [-1, 1]², or non-finite vertices are refused on construction."""
    config = PatternConfig(type=PatternType.LATTICE, complexity=1.0, vertices=4)
    with pytest.raises(ValueError, match=r"Pattern\.vertices"):
        Pattern(config, vertices)


@given(pattern_configs(max_complexity=3.0))
def test_params_round_trip_through_msgpack_bit_exactly(config: PatternConfig) -> None:
    """to_params is msgpack-plain and from_params rebuilds the same bits."""
    pattern = generate_pattern(config)
    wire = msgpack.unpackb(msgpack.packb(pattern.to_params()))
    again = Pattern.from_params(wire)
    assert again == pattern
    assert again.vertices.tobytes() == pattern.vertices.tobytes()
    assert again.digest() == pattern.digest()


_CONFIG = {"type": "spiral", "complexity": 1.0, "seed": 0, "vertices": 3}


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ([], ""),
        ({"config": _CONFIG}, ""),
        ({"config": {**_CONFIG, "seed": -1}, "vertices": []}, "config.seed"),
        ({"config": _CONFIG, "vertices": "abc"}, "vertices"),
        ({"config": _CONFIG, "vertices": [[0, 0], [0]]}, "vertices"),
        ({"config": _CONFIG, "vertices": [[0, 0], [0, 0]]}, "vertices"),
        ({"config": _CONFIG, "vertices": [[0, 0], [0, 0], ["0", 0]]}, "vertices"),
        ({"config": _CONFIG, "vertices": [[True, 0], [0, 0], [0, 0]]}, "vertices"),
        ({"config": _CONFIG, "vertices": [[0, 0], [0, 0], [0, math.inf]]}, "vertices[2]"),
        ({"config": _CONFIG, "vertices": [[0, 0], [1.5, 0], [0, 0]]}, "vertices[1]"),
    ],
)
def test_from_params_refuses_malformed_data(data: object, path: str) -> None:
    """Malformed pattern data is refused, saying where the fault is."""
    with pytest.raises(MalformedDataError) as caught:
        Pattern.from_params(data)
    assert caught.value.path == path


# ---------------------------------------------------------------- the kernel


def _run_chunked(params: dict[str, Any], chunks: int) -> dict[str, Any]:
    """What the Ray shell does: split, run each slice (over the wire), merge."""
    slices = pattern_split(params, chunks)
    assert 1 <= len(slices) <= chunks
    results = [msgpack.unpackb(msgpack.packb(pattern_kernel(s))) for s in slices]
    random.Random(chunks).shuffle(results)  # replies may come back in any order
    return pattern_merge(params, results)


@given(batch_params(), st.integers(1, 10))
def test_split_kernel_merge_equals_the_single_process_batch(
    params: dict[str, Any], chunks: int
) -> None:
    """Chunked generation gives exactly generate_batch's patterns, in order."""
    merged = _run_chunked(params, chunks)
    expected = generate_batch([PatternConfig.model_validate(c) for c in params["patterns"]])
    assert merged == pattern_kernel(params)
    assert merged["index"] == 0
    assert [p["digest"] for p in merged["patterns"]] == [p.digest() for p in expected]
    for summary, pattern in zip(merged["patterns"], expected, strict=True):
        assert summary["config"] == pattern.config.to_params()
        assert summary["vertices"] == pattern.config.vertex_count
        assert ("points" in summary) is params["include_vertices"]
        if params["include_vertices"]:
            rebuilt = Pattern.from_params(
                {"config": summary["config"], "vertices": summary["points"]}
            )
            assert rebuilt.vertices.tobytes() == pattern.vertices.tobytes()


def _heaviest(weights: list[int], starts: list[int]) -> int:
    bounds = [*starts, len(weights)]
    return max(sum(weights[a:b]) for a, b in itertools.pairwise(bounds))


@given(st.lists(pattern_configs(max_complexity=3.0), min_size=1, max_size=7), st.integers(1, 7))
def test_split_is_contiguous_and_balanced_by_work(
    configs: list[PatternConfig], chunks: int
) -> None:
    """Slices tile the batch in order, and no other tiling has a lighter heaviest slice."""
    params = {"patterns": [c.to_params() for c in configs]}
    slices = pattern_split(params, chunks)
    starts = [s["index"] for s in slices]
    assert starts[0] == 0
    assert [c for s in slices for c in s["patterns"]] == params["patterns"]
    for s, following in itertools.pairwise([*slices, None]):
        end = following["index"] if following else len(configs)
        assert s["index"] + len(s["patterns"]) == end
    weights = [c.estimated_work for c in configs]
    best = min(
        _heaviest(weights, [0, *cuts])
        for k in range(min(chunks, len(configs)))
        for cuts in itertools.combinations(range(1, len(configs)), k)
    )
    assert _heaviest(weights, starts) == best


def test_a_single_config_is_a_batch_of_one() -> None:
    """Params holding one config's fields run as a batch of one."""
    single = {"type": "quantum", "complexity": 2.5, "seed": 7, "include_vertices": True}
    result = pattern_kernel(single)
    reference = generate_pattern(PatternConfig(type=PatternType.QUANTUM, complexity=2.5, seed=7))
    assert result["index"] == 0
    assert [p["digest"] for p in result["patterns"]] == [reference.digest()]
    assert result["patterns"][0]["points"] == reference.vertices.tolist()
    assert _run_chunked(single, 3) == result


def test_an_empty_batch_is_one_empty_slice() -> None:
    """An empty batch splits into one empty slice and merges to no patterns."""
    assert _run_chunked({"patterns": []}, 4) == {"index": 0, "patterns": []}


def test_summaries_leave_vertices_out_unless_asked() -> None:
    """By default a reply carries bounds and a digest, not the vertices."""
    result = pattern_kernel({"type": "rose", "complexity": 1.0})
    summary = result["patterns"][0]
    assert set(summary) == {"digest", "config", "vertices", "harmonics", "bounds"}
    xmin, ymin, xmax, ymax = summary["bounds"]
    assert -1.0 <= xmin <= xmax <= 1.0
    assert -1.0 <= ymin <= ymax <= 1.0


_SPIRAL = {"type": "spiral", "complexity": 1.0}


@pytest.mark.parametrize(
    ("params", "name", "shown"),
    [
        ([1, 2], "params", "[1, 2]"),
        ({"patterns": "all"}, "'patterns'", "'all'"),
        ({"patterns": [7]}, "'patterns[0]'", "7"),
        ({"patterns": [{"type": "spiral", "complexity": 11}]}, "'patterns[0].complexity'", "11"),
        ({"patterns": [_SPIRAL, {"complexity": 1}]}, "'patterns[1].type'", "{'complexity': 1}"),
        ({"type": "hexagon", "complexity": 1.0}, "'type'", "'hexagon'"),
        ({**_SPIRAL, "colour": "red"}, "'colour'", "'colour'"),
        ({"patterns": [], "include_vertices": "yes"}, "'include_vertices'", "'yes'"),
        ({"patterns": [], "index": -1}, "'index'", "-1"),
        ({"patterns": [_SPIRAL] * (MAX_BATCH + 1)}, "'patterns'", str(MAX_BATCH + 1)),
        ({"patterns": [{**_SPIRAL, "vertices": 1_000_000}] * 17}, "'patterns'", "17000000"),
    ],
)
def test_invalid_kernel_params_name_the_param(params: Any, name: str, shown: str) -> None:
    """Split, kernel and merge refuse bad params, naming the param and showing its value."""
    for call in (
        lambda: pattern_kernel(params),
        lambda: pattern_split(params, 2),
        lambda: pattern_merge(params, []),
    ):
        with pytest.raises(KernelError) as caught:
            call()
        assert name in str(caught.value)
        assert shown in str(caught.value)


@pytest.mark.parametrize("chunks", [0, -3, True, 2.0, "2"])
def test_split_refuses_a_bad_chunk_count(chunks: Any) -> None:
    """The chunk count must be an int >= 1."""
    with pytest.raises(KernelError, match=r"'chunks' must be an int >= 1, got "):
        pattern_split({"patterns": []}, chunks)


def test_merge_refuses_results_that_do_not_tile_the_batch() -> None:
    """A missing, repeated or unindexed chunk is refused rather than merged wrongly."""
    params = {"patterns": [_SPIRAL, _SPIRAL, _SPIRAL]}
    results = [pattern_kernel(s) for s in pattern_split(params, 3)]
    assert len(results) == 3
    for bad in (results[:2], [results[0], results[0], results[1]], [*results[:2], {"x": 1}]):
        with pytest.raises(KernelError, match="'results'"):
            pattern_merge(params, bad)


# ---------------------------------------------------------------- artefacts

# The top of the GLIMMER plan the project grew from, verbatim, cut after its first body line.
SEED_TOP = b"""@pattern_meta@
GLIMMER Pattern:
{
  "metadata": {
    "timestamp": "2025-06-17 11:17:51",
    "author": "isdood",
    "pattern_version": "1.0.0",
    "color": "#FF69B4"
  },
  "file_info": {
    "path": "./docs/plans/001-phase1-implementation.md",
    "type": "md",
    "hash": "5bc69cb4a4819130a98391a20017cc4d9586f052"
  }
}
@pattern_meta@

# Phase 1: GLIMMER Integration Implementation Plan
"""
SEED_FILE = Path("/work/shared/seeds/000_e8af59d471344553.txt")
_FIELDS = {"timestamp": "2025-06-17 11:17:51", "author": "a", "path": "p", "type": "md"}


@given(st.binary(max_size=300), artefact_fields())
def test_artefacts_round_trip(body: bytes, fields: dict[str, str]) -> None:
    """Any body under any valid metadata reads back unchanged, with its SHA-1."""
    meta, read = read_artefact(write_artefact(body, **fields))
    assert read == body
    assert meta.model_dump() == {**fields, "hash": hashlib.sha1(body).hexdigest()}


@given(st.binary(min_size=1, max_size=300), st.data())
def test_any_single_byte_corruption_of_the_body_is_a_hash_mismatch(
    body: bytes, data: st.DataObject
) -> None:
    """Changing any one body byte is reported as a hash mismatch naming both hashes."""
    artefact = bytearray(write_artefact(body, **_FIELDS))
    at = len(artefact) - len(body) + data.draw(st.integers(0, len(body) - 1))
    artefact[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(ArtefactHashError) as caught:
        read_artefact(bytes(artefact))
    claimed = hashlib.sha1(body).hexdigest()
    actual = hashlib.sha1(bytes(artefact[len(artefact) - len(body) :])).hexdigest()
    assert (caught.value.expected, caught.value.actual) == (claimed, actual)
    assert claimed in str(caught.value)
    assert actual in str(caught.value)


def _good() -> bytes:
    return write_artefact(b"body\n", **_FIELDS)


def _broken(old: bytes, new: bytes) -> bytes:
    """A good artefact with ``old`` replaced by ``new``."""
    good = _good()
    assert old in good
    return good.replace(old, new)


_META = ArtefactMetadataError


@pytest.mark.parametrize(
    ("artefact", "error", "detail"),
    [
        (b"", ArtefactHeaderError, "line 1"),
        (b"@pattern_meta@", ArtefactHeaderError, "line 1"),
        (_good()[1:], ArtefactHeaderError, "line 1"),
        (_broken(b"GLIMMER", b"GLINTER"), ArtefactHeaderError, "line 2"),
        (_broken(b"}\n@pattern_meta@", b"}\n@pattern_meta"), ArtefactHeaderError, "closing"),
        (_broken(b"@pattern_meta@\n\n", b"@pattern_meta@\n"), ArtefactHeaderError, "blank"),
        (_broken(b'"author"', b'author"'), ArtefactJSONError, "JSON"),
        (
            _broken(b'"author": "a"', b'"author": "a", "author": "b"'),
            ArtefactJSONError,
            "duplicate",
        ),
        (_broken(b"#FF69B4", b"#FF69B"), _META, "'metadata.color'"),
        (_broken(b"#FF69B4", b"pink"), _META, "'metadata.color'"),
        (_broken(b"2025-06-17 11", b"2025-06-17T11"), _META, "'metadata.timestamp'"),
        (_broken(b"2025-06-17", b"2025-02-30"), _META, "'metadata.timestamp'"),
        (_broken(b'"1.0.0"', b'"1.0"'), _META, "'metadata.pattern_version'"),
        (_broken(b'"md"', b"7"), _META, "'file_info.type'"),
        (_broken(b'"author": "a",', b""), _META, "'metadata.author'"),
        (_broken(b'"author"', b'"writer"'), _META, "'metadata.writer'"),
        (_broken(b'"file_info"', b'"info"'), _META, "'info'"),
        (_broken(b'"hash": "', b'"hash": "X'), _META, "'file_info.hash'"),
        (_broken(b'"#FF69B4"', b'"#FF69B4", "hash": ""'), _META, "'metadata.hash'"),
        (_broken(b'"md",', b'"md", "size": 1,'), _META, "'file_info.size'"),
        (_broken(b"  }\n}", b'  },\n  "more": {}\n}'), _META, "'more'"),
        (b"@pattern_meta@\nGLIMMER Pattern:\n[]\n@pattern_meta@\n\n", _META, "'<root>'"),
    ],
)
def test_malformed_headers_give_the_named_error(
    artefact: bytes, error: type[ArtefactError], detail: str
) -> None:
    """Each kind of header fault raises its own error, saying where or which field."""
    with pytest.raises(error) as caught:
        read_artefact(artefact)
    assert detail in str(caught.value)
    assert isinstance(caught.value, VsmError)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("field", "value"),
    [("color", "red"), ("timestamp", "yesterday"), ("author", ""), ("pattern_version", "v1")],
)
def test_write_refuses_bad_metadata_by_name(field: str, value: str) -> None:
    """Writing with an invalid field raises before anything is produced, naming the field."""
    with pytest.raises(ArtefactMetadataError, match=f"metadata.{field}") as caught:
        write_artefact(b"", **{**_FIELDS, field: value})
    assert caught.value.field == f"metadata.{field}"


def test_the_seed_header_parses_and_its_cut_body_mismatches() -> None:
    """The seed plan's header parses; its cut body is reported as a hash mismatch."""
    with pytest.raises(ArtefactHashError) as caught:
        read_artefact(SEED_TOP)
    meta = caught.value.meta
    assert (meta.timestamp, meta.author, meta.pattern_version, meta.color) == (
        "2025-06-17 11:17:51",
        "isdood",
        "1.0.0",
        "#FF69B4",
    )
    assert (meta.path, meta.type) == ("./docs/plans/001-phase1-implementation.md", "md")
    cut = SEED_TOP.split(b"@pattern_meta@\n\n", 1)[1]
    assert caught.value.expected == "5bc69cb4a4819130a98391a20017cc4d9586f052"
    assert caught.value.actual == hashlib.sha1(cut).hexdigest()
    assert caught.value.expected in str(caught.value)
    assert caught.value.actual in str(caught.value)


@pytest.mark.skipif(not SEED_FILE.exists(), reason="the seed plan is only in the workspace")
def test_the_whole_seed_plan_verifies_and_is_rewritten_exactly() -> None:
    """The whole seed plan verifies, and writing its body back gives the same bytes."""
    data = SEED_FILE.read_bytes()
    meta, body = read_artefact(data)
    fields = meta.model_dump(exclude={"hash"})
    assert write_artefact(body, **fields) == data


@given(pattern_configs(max_complexity=3.0))
def test_pattern_bodies_round_trip_bit_exactly(config: PatternConfig) -> None:
    """A pattern survives body and artefact serialisation bit for bit."""
    pattern = generate_pattern(config)
    artefact = write_artefact(pattern_body(pattern), **{**_FIELDS, "type": "json"})
    _, body = read_artefact(artefact)
    again = pattern_from_body(body)
    assert again == pattern
    assert again.vertices.tobytes() == pattern.vertices.tobytes()


@pytest.mark.parametrize(
    "body",
    [
        b"\xff",
        b"not json",
        b"[]",
        b'{"config": {}, "vertices": []}',
        b'{"format": "glimmer-pattern/1", "config": {}, "vertices": []}',
        b'{"format": "glimmer-pattern/1", "config": {"type": "rose", "complexity": 1,'
        b' "vertices": 3}, "vertices": [[0, 0], [0, 0], [NaN, 0]]}',
    ],
)
def test_pattern_from_body_refuses_what_is_not_a_pattern(body: bytes) -> None:
    """Bodies that are not pattern bodies raise ArtefactBodyError."""
    with pytest.raises(ArtefactBodyError):
        pattern_from_body(body)
