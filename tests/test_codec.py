"""The persistent configuration object, Codec."""

import json
import pickle

import numpy as np
import pytest

import maskcodec as mc
from maskcodec.codec import Codec


def _mask():
    m = np.zeros((30, 40), dtype=bool)
    m[5:20, 10:33] = True
    return m


def test_defaults_are_the_text4seg_pipeline():
    m = _mask()
    assert Codec().encode(m, "white horse") == mc.encode_mask(m, "white horse")
    assert Codec().grid == (16, 16)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"grid": (8, 12), "method": "area", "format": "irle", "envelope": False},
        {"grid": 24, "method": "coverage", "threshold": 0.25, "nonempty": True, "format": "full"},
        {"background": "background", "mode": "strict"},
    ],
)
def test_codec_matches_the_functions_and_round_trips(options):
    codec = Codec(**options)
    m = _mask()
    text = codec.encode(m, "dog")
    grid = codec.grid
    kw = {k: v for k, v in options.items() if k in ("method", "threshold", "nonempty", "background")}
    assert text == mc.encode_mask(
        m, "dog", grid=grid, format=codec.format, envelope=codec.envelope, **kw
    )
    back = codec.parse(text).grid
    assert back == codec.encode_grid(m, "dog")
    assert np.array_equal(codec.decode(text, m.shape), back.mask(m.shape))
    assert codec.to_text(back) == text


def test_config_round_trip_json_pickle_and_repr():
    codec = Codec(grid=(8, 12), method="area", format="irle", envelope=False, nonempty=True)
    config = json.loads(json.dumps(codec.get_config()))
    assert config["id"] == "maskcodec.text4seg"
    assert Codec.from_config(config) == codec
    assert pickle.loads(pickle.dumps(codec)) == codec
    assert eval(repr(codec), {"Codec": Codec}) == codec
    assert hash(codec) == hash(Codec.from_config(config))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"grid": 0}, "out of range"),
        ({"method": "bilinear"}, "unknown method 'bilinear'"),
        ({"format": "csv"}, "unknown format 'csv'"),
        ({"mode": "lenient"}, "unknown mode 'lenient'"),
        ({"background": "a|b"}, r"contains '\|'"),
        ({"threshold": 0.0}, "threshold must be in"),
    ],
)
def test_bad_options_are_typed_errors(options, match):
    with pytest.raises(mc.MaskcodecError, match=match):
        Codec(**options)


def test_from_config_rejects_unknown_keys_and_ids():
    with pytest.raises(mc.MaskcodecError, match="unknown codec option"):
        Codec.from_config({"grid": [16, 16], "colour": "red"})
    with pytest.raises(mc.MaskcodecError, match="config id"):
        Codec.from_config({"id": "numcodecs.zlib"})
