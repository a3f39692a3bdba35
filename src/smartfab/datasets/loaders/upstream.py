"""Known upstream files: our own sha256 registry, checksum checks and an optional fetch.

Every loader reads a user's local copy of a public dataset. When a file it reads is known here
(same dataset and file name), its sha256 must match: a known name with other content raises
:class:`~smartfab.errors.ChecksumError` (unless the loader's ``verify=False``). Files not known
here (another CWRU record, another C-MAPSS subset, ``mill.mat``, ``secom.data``) are accepted;
loaders still record their sha256 in the dataset's parameters.

The hashes were computed on copies checked byte by byte against independent uploads (see the
``source`` of each entry). :func:`fetch` downloads one of them with pooch for machines with
internet access; nothing in smartfab depends on it at run time.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from smartfab.datasets.checksums import sha256_of
from smartfab.errors import ChecksumError, DatasetError

_CWRU_REPO = (
    "https://raw.githubusercontent.com/yyxyz/CaseWesternReserveUniversityData/"
    "b19e5a7e9fcd72b1c541f3c12fb42ac3fe94202f/"
)
_CMAPSS_REPO = (
    "https://raw.githubusercontent.com/Junkun-Lu/"
    "Attention-Mixer-based-Transformer-Network-for-Time-Series-Processing/"
    "0476bb90edfb06a19e2dfa573b48e7164e99f595/CMAPSS-RUL/CMAPSS/"
)
_SECOM_REPO = (
    "https://raw.githubusercontent.com/PundirNeetu/Semiconductor-UCI/"
    "3018414835e6bb5aa3462b8a18ffe792c405e121/"
)
_CWRU_ORIGIN = "CWRU Bearing Data Center, https://engineering.case.edu/bearingdatacenter"
_CMAPSS_ORIGIN = "NASA Ames PCoE Prognostics Data Repository, CMAPSSData.zip"
_SECOM_ORIGIN = "UCI Machine Learning Repository, SECOM (McCann and Johnston 2008)"


@dataclass(frozen=True)
class UpstreamFile:
    """One public file whose exact content we know.

    Attributes
    ----------
    dataset:
        Name of the loader reading it (``cwru``, ``cmapss``, ...).
    name:
        The file name the loader expects (the upstream download name).
    sha256:
        Hex digest of the exact bytes.
    size:
        Size in bytes.
    url:
        A pinned copy with exactly these bytes (used by :func:`fetch`).
    origin:
        Where the data comes from originally.
    aliases:
        Other names under which the same bytes are commonly distributed.
    """

    dataset: str
    name: str
    sha256: str
    size: int
    url: str
    origin: str
    aliases: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Registry key, ``<dataset>/<name>``."""
        return f"{self.dataset}/{self.name}"


#: every upstream file whose content we know, keyed ``<dataset>/<file name>``
KNOWN: dict[str, UpstreamFile] = {
    entry.key: entry
    for entry in (
        UpstreamFile(
            "cwru",
            "97.mat",
            "16bf48babcf1c7ac224bc1a81cd9eafdb27e42d5cf559761907e067e8eeadf3c",
            3_903_344,
            _CWRU_REPO + "normal_0_97.mat",
            _CWRU_ORIGIN + ", Normal Baseline Data (Normal_0)",
            ("normal_0_97.mat", "Normal_0.mat"),
        ),
        UpstreamFile(
            "cwru",
            "105.mat",
            "f80b0ea04fd06b372a0eaec7c056543ea37e4bb4727a5b173d2a5bacd2aa9cab",
            2_910_768,
            _CWRU_REPO + "12k_Drive_End_IR007_0_105.mat",
            _CWRU_ORIGIN + ", 12k Drive End Bearing Fault Data (IR007_0)",
            ("12k_Drive_End_IR007_0_105.mat", "IR007_0.mat"),
        ),
        UpstreamFile(
            "cwru",
            "118.mat",
            "b00628f8dd8d1d930af77fa465d1e5cdb385fe259489053f91f3680bda7f640e",
            2_942_112,
            _CWRU_REPO + "12k_Drive_End_B007_0_118.mat",
            _CWRU_ORIGIN + ", 12k Drive End Bearing Fault Data (B007_0)",
            ("12k_Drive_End_B007_0_118.mat", "B007_0.mat"),
        ),
        UpstreamFile(
            "cwru",
            "130.mat",
            "35a095307d0971477049b343a1b5981dde465a58fb7f233ad89b035068c1717d",
            2_928_192,
            _CWRU_REPO + "12k_Drive_End_OR007%406_0_130.mat",
            _CWRU_ORIGIN + ", 12k Drive End Bearing Fault Data (OR007@6_0)",
            ("12k_Drive_End_OR007@6_0_130.mat", "OR007@6_0.mat"),
        ),
        UpstreamFile(
            "cmapss",
            "train_FD001.txt",
            "963b5e22825b34d8b21c69e1aeb4af3e647050eb672ee8834ba4b5d91d2de0f8",
            3_515_356,
            _CMAPSS_REPO + "train_FD001.txt",
            _CMAPSS_ORIGIN,
        ),
        UpstreamFile(
            "cmapss",
            "test_FD001.txt",
            "3cda7109ce17bafb5443f2ac926cfcf88154b941b8c4cf95eb55d1ddd6f52851",
            2_228_855,
            _CMAPSS_REPO + "test_FD001.txt",
            _CMAPSS_ORIGIN,
        ),
        UpstreamFile(
            "cmapss",
            "RUL_FD001.txt",
            "a19c8ec94931949d0485bdc35118206e9c81c4547b422efb9cf86f4ceddbceca",
            429,
            _CMAPSS_REPO + "RUL_FD001.txt",
            _CMAPSS_ORIGIN,
        ),
        UpstreamFile(
            "secom",
            "secom_labels.data",
            "126884cf453705c9e61a903fe906f0665a3b45ce3639e621edc5c93c89627e03",
            40_638,
            _SECOM_REPO + "secom_labels.data",
            _SECOM_ORIGIN,
        ),
        UpstreamFile(
            "secom",
            "secom.names",
            "9ac360ae9f65e220893b56431abb2bf8000b597c4e38ff87a7cc4e6480bd27ed",
            4_224,
            _SECOM_REPO + "secom.names",
            _SECOM_ORIGIN,
        ),
    )
}


def known(dataset: str, name: str) -> UpstreamFile | None:
    """The registry entry of a file of ``dataset`` called ``name`` (or one of its aliases).

    Parameters
    ----------
    dataset:
        Loader name, e.g. ``"cwru"``.
    name:
        File name (no directory).

    Returns
    -------
    UpstreamFile or None
        ``None`` when the file is not known.
    """
    entry = KNOWN.get(f"{dataset}/{name}")
    if entry is not None:
        return entry
    for candidate in KNOWN.values():
        if candidate.dataset == dataset and name in candidate.aliases:
            return candidate
    return None


def check_file(dataset: str, path: Path, *, verify: bool = True) -> str:
    """Compute a file's sha256 and compare it with the registry when the file is known.

    Parameters
    ----------
    dataset:
        Loader name the file belongs to.
    path:
        The local file.
    verify:
        When false, a mismatch is not an error (the digest is still returned).

    Returns
    -------
    str
        The file's sha256.

    Raises
    ------
    ChecksumError
        When the file is known under this name and its content differs.
    DatasetError
        When the file cannot be read.
    """
    try:
        actual = sha256_of(path)
    except OSError as err:
        raise DatasetError(f"{dataset}: cannot read {path}: {err.strerror or err}") from None
    entry = known(dataset, path.name)
    if verify and entry is not None and entry.sha256 != actual:
        raise ChecksumError(path, entry.sha256, actual)
    return actual


def require_file(dataset: str, path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise a :class:`DatasetError` saying what it is.

    Parameters
    ----------
    dataset:
        Loader name (for the message).
    path:
        Expected file.
    what:
        Description of the file, e.g. ``"upstream training data"``.

    Returns
    -------
    Path
        ``path`` itself.

    Raises
    ------
    DatasetError
        When ``path`` is missing or not a regular file.
    """
    if not path.is_file():
        state = "is not a file" if path.exists() else "is missing"
        raise DatasetError(f"{dataset}: {path} {state} (expected the {what} {path.name!r})")
    return path


def entry_for(name: str) -> UpstreamFile:
    """Find a registry entry by key (``cwru/97.mat``) or by a file name known only once.

    Parameters
    ----------
    name:
        Registry key or bare file name.

    Returns
    -------
    UpstreamFile
        The entry.

    Raises
    ------
    DatasetError
        When no entry, or more than one, matches.
    """
    if name in KNOWN:
        return KNOWN[name]
    matches = [entry for entry in KNOWN.values() if name == entry.name or name in entry.aliases]
    if len(matches) == 1:
        return matches[0]
    if matches:
        keys = ", ".join(sorted(entry.key for entry in matches))
        raise DatasetError(f"upstream file {name!r} is ambiguous; use one of: {keys}")
    raise DatasetError(f"unknown upstream file {name!r}; known: {', '.join(sorted(KNOWN))}")


def _copy_file_url(url: str, output_file: Any, pooch_obj: Any) -> None:
    """A pooch downloader for ``file://`` URLs (a local mirror): copy the file."""
    source = Path(url2pathname(unquote(urlparse(url).path)))
    if not source.is_file():
        raise DatasetError(f"{url}: no such file")
    if isinstance(output_file, str | Path):
        shutil.copyfile(source, output_file)
    else:
        with source.open("rb") as handle:
            shutil.copyfileobj(handle, output_file)


def fetch(
    name: str, dest_dir: Path | str, *, url: str | None = None, progressbar: bool = False
) -> Path:
    """Download a known upstream file into ``dest_dir`` and check its sha256 (needs pooch).

    Optional: loaders never call it; it is for machines with internet access (or a local mirror
    given as a ``file://`` URL). An existing file with the right content is not downloaded again.

    Parameters
    ----------
    name:
        Registry key (``"cwru/97.mat"``) or a bare file name known only once (``"97.mat"``).
    dest_dir:
        Directory to write into (created if needed); the file gets its upstream name.
    url:
        Another location of the same bytes (a mirror, ``https://`` or ``file://``); default: the
        pinned copy in the registry.
    progressbar:
        Show pooch's progress bar (needs tqdm).

    Returns
    -------
    Path
        The local file.

    Raises
    ------
    DatasetError
        For an unknown name, a failed download or content that does not match the registry
        (pooch then removes the download).
    """
    import pooch  # optional at run time: only this function needs it

    entry = entry_for(name)
    source = url or entry.url
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    downloader = _copy_file_url if source.startswith("file://") else None
    try:
        local = pooch.retrieve(
            url=source,
            known_hash=f"sha256:{entry.sha256}",
            fname=entry.name,
            path=dest,
            downloader=downloader,
            progressbar=progressbar,
        )
    except DatasetError:
        raise
    except ValueError as err:
        raise DatasetError(
            f"{entry.key}: download from {source} was refused: {err} "
            f"(expected sha256 {entry.sha256})"
        ) from None
    except Exception as err:  # network errors of requests, ftp, ...
        raise DatasetError(f"{entry.key}: download from {source} failed: {err}") from None
    return Path(local)


def load_mat(loader: str, file: Path, **options: Any) -> dict[str, Any]:
    """Read a MATLAB v5 file with scipy; an unreadable file is a DatasetError naming it."""
    import scipy.io

    try:
        content: dict[str, Any] = scipy.io.loadmat(file, **options)
    except (
        scipy.io.matlab.MatReadError,
        ValueError,
        TypeError,
        OSError,
        NotImplementedError,
    ) as err:
        raise DatasetError(f"{loader}: {file} is not a readable MATLAB v5 file: {err}") from None
    return content
