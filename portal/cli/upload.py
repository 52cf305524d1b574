"""``portal upload``: a client of the portal's API that uploads files resumably (tus 1.0).

It speaks the tus protocol through ``tuspy`` (a client the portal's developers did not write), so
the server is held to the standard, not to our own client's habits. Each file's SHA-256 goes with
it in the metadata and the server refuses the document if the bytes it assembled differ.

Resuming: the address of each unfinished upload is kept in ``$XDG_CACHE_HOME/portal/uploads.json``
(default ``~/.cache/portal``), under a key derived from the portal's address, the review, request
and case, and the file's SHA-256 and size: no file name, nothing personal. Running the same command
again continues where the server says the upload stands.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click

from portal.cli.client import api_base_url, read_token, unreachable
from portal.cli.context import CliContext, pass_cli

DEFAULT_CHUNK = 8 * 1024 * 1024
# A 4xx answer is the server's final word on this file (a closed review, a refused type, a bad
# token): running the command again would only be refused again. Worth running again: the network,
# a 5xx (the server failed), and the two tus answers about one part rather than the upload: another
# run moved the offset on (409 offset_mismatch) or the part arrived damaged (460).
_RESUMABLE_CODES = frozenset({"offset_mismatch", "checksum_mismatch"})


def resumable(status: int | None, code: str | None) -> bool:
    """Whether an answer (None: no answer at all) is an interruption, not a refusal."""
    return status is None or status >= 500 or code in _RESUMABLE_CODES


@dataclass(frozen=True)
class Outcome:
    path: Path
    document: dict[str, Any] | None = None
    reference: str | None = None
    refused: str | None = None
    interrupted: str | None = None


class _Interrupted(Exception):
    pass


class _Refused(Exception):
    pass


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "portal"


def file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while block := stream.read(1024 * 1024):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def resume_key(base_url: str, review: str, request: int | None, case: str | None, sha: str) -> str:
    """What identifies 'the same upload' across runs; says nothing about the file's name."""
    parts = [base_url, review.upper(), str(request or ""), (case or "").upper(), sha]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _server_error(content: Any) -> tuple[str, str] | None:
    """The ``{"error": {"code", "message"}}`` of an answer, if it has one."""
    try:
        error = json.loads(content)["error"]
        code, message = error["code"], error["message"]
    except (TypeError, ValueError, KeyError):
        return None
    if not isinstance(code, str) or not isinstance(message, str):
        return None
    return code[:60], message[:1000]


class _FixedKey:
    """tuspy's fingerprinter, given the key computed once (tuspy would read the file again)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def get_fingerprint(self, fs: IO[bytes]) -> str:
        return self.key


@contextmanager
def _url_storage() -> Iterator[Any]:
    from tusclient.storage.filestorage import FileStorage

    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    storage: Any = FileStorage(str(folder / "uploads.json"))  # type: ignore[no-untyped-call]
    try:
        yield storage
    finally:
        storage.close()


def _failure(exc: Any, base_url: str, url: str | None) -> Exception:
    status = getattr(exc, "status_code", None)
    content = getattr(exc, "response_content", None)
    if status is None and not content:  # no answer at all: say what the network said
        return _Interrupted(unreachable(base_url, url, exc))
    error = _server_error(content)
    if error is not None:
        code, text = error
        message = f"{text} ({code})"
    else:
        code, message = None, f"the portal answered with status {status}"
    if status is not None and status >= 500:
        message = f"the portal at {base_url} failed: {message}"
    if resumable(status, code):
        return _Interrupted(message)
    return _Refused(message)


class FileUpload:
    """One file through the tus endpoint: create or resume, send in chunks, report."""

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        path: Path,
        review: str,
        request: int | None,
        case: str | None,
        chunk_size: int,
        storage: Any,
        url_given: str | None = None,
    ) -> None:
        self.base_url = base_url
        self.url_given = url_given
        self.auth = {"Authorization": f"Bearer {token}"}
        self.path = path
        self.chunk_size = chunk_size
        self.storage = storage
        self.sha256, self.size = file_digest(path)
        self.key = resume_key(base_url, review, request, case, self.sha256)
        self.metadata = {
            "filename": path.name,
            "filetype": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            "review": review,
            "sha256": self.sha256,
        }
        if request is not None:
            self.metadata["request"] = str(request)
        if case:
            self.metadata["case"] = case

    def _uploader(self) -> Any:
        from tusclient.client import TusClient
        from tusclient.exceptions import TusCommunicationError

        client = TusClient(f"{self.base_url}/api/v1/uploads", headers=dict(self.auth))
        options: dict[str, Any] = {
            "file_path": str(self.path),
            "chunk_size": self.chunk_size,
            "metadata": self.metadata,
            "store_url": True,
            "url_storage": self.storage,
            "fingerprinter": _FixedKey(self.key),
            "upload_checksum": True,  # each PATCH checked by the server (sha1, tuspy's choice)
        }
        try:
            return client.uploader(**options)
        except TusCommunicationError as exc:
            if exc.status_code in (404, 410):  # expired or cancelled meanwhile: start afresh
                self.storage.remove_item(self.key)
                return client.uploader(**options)
            raise

    def run(self, progress: bool) -> Outcome:
        from tusclient.exceptions import TusCommunicationError

        try:
            uploader = self._uploader()
            if not uploader.url:
                uploader.set_url(uploader.create_url())
                uploader.offset = 0
            self._send(uploader, progress)
            return self._result(uploader)
        except TusCommunicationError as exc:
            failure = _failure(exc, self.base_url, self.url_given)
        except (_Refused, _Interrupted) as known:
            failure = known
        except OSError as exc:  # the network, from under requests
            failure = _Interrupted(unreachable(self.base_url, self.url_given, exc))
        if isinstance(failure, _Refused):
            self.storage.remove_item(self.key)  # the server kept nothing: next time starts over
            return Outcome(self.path, refused=str(failure))
        return Outcome(self.path, interrupted=str(failure))

    def _send(self, uploader: Any, progress: bool) -> None:
        from tqdm import tqdm

        if uploader.offset:
            click.echo(f"{self.path.name}: resuming at byte {uploader.offset:,}", err=True)
        with tqdm(
            total=self.size,
            initial=uploader.offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=self.path.name[:40],
            disable=not progress,
            leave=True,
        ) as bar:
            while uploader.offset < self.size:
                before = uploader.offset
                uploader.upload_chunk()
                bar.update(uploader.offset - before)

    def _result(self, uploader: Any) -> Outcome:
        import requests

        state = self._state(uploader.url)
        if state["state"] != "complete":
            # Every byte is in but the document was not made (the server failed at the end):
            # an empty PATCH at the final offset asks it to try again.
            answer = requests.patch(
                uploader.url,
                headers={
                    **self.auth,
                    "Tus-Resumable": "1.0.0",
                    "Upload-Offset": str(self.size),
                    "Content-Type": "application/offset+octet-stream",
                },
                data=b"",
                timeout=600,
            )
            if answer.status_code != 204:
                raise _failure(_Answer(answer), self.base_url, self.url_given)
            state = self._state(uploader.url)
        self.storage.remove_item(self.key)
        document = state["document"]
        return Outcome(
            self.path,
            document=document,
            reference=document["reference"] if document else None,
        )

    def _state(self, url: str) -> dict[str, Any]:
        import requests

        answer = requests.get(url, headers={**self.auth, "Tus-Resumable": "1.0.0"}, timeout=60)
        if answer.status_code != 200:
            raise _failure(_Answer(answer), self.base_url, self.url_given)
        state: dict[str, Any] = answer.json()
        return state


class _Answer:
    """A plain HTTP answer, shaped like tuspy's errors for ``_failure``."""

    def __init__(self, response: Any) -> None:
        self.status_code = response.status_code
        self.response_content = response.content


@click.command("upload")
@click.option("--review", required=True, help="The review's code, e.g. SWG24.")
@click.option("--request", "request_id", type=click.IntRange(min=1), help="The request's number.")
@click.option("--case", "case_reference", help="The case reference the files are about.")
@click.option(
    "--url",
    envvar="PORTAL_URL",
    help="The portal's address (default: $PORTAL_URL, else PORTAL_PUBLIC_URL's).",
)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file holding your API token (default: $PORTAL_TOKEN).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the documents as a JSON list.")
@click.option(
    "--chunk-size",
    type=click.IntRange(min=64 * 1024),
    default=DEFAULT_CHUNK,
    show_default=True,
    help="Bytes per request: what a dropped connection can cost at most.",
)
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path),
)
@pass_cli
def upload(
    cli: CliContext,
    review: str,
    request_id: int | None,
    case_reference: str | None,
    url: str | None,
    token_file: Path | None,
    as_json: bool,
    chunk_size: int,
    files: tuple[Path, ...],
) -> None:
    """Upload FILES into a review, resumably: run the same command again to continue.

    Prints each file's reference. Exit status 0 when every file was accepted, 1 when any was
    refused or interrupted (the portal's reason is printed), 2 on usage errors. A refusal (any
    4xx answer: a closed review, a refused type, a bad token) is final: running the command again
    would be refused again. An interruption (the network, or a 5xx) is worth running again.
    """
    base_url = api_base_url(cli, url)
    token = read_token(token_file)
    progress = sys.stderr.isatty()
    outcomes: list[Outcome] = []
    with _url_storage() as storage:
        for path in files:
            outcome = FileUpload(
                base_url=base_url,
                token=token,
                path=path,
                review=review,
                request=request_id,
                case=case_reference,
                chunk_size=chunk_size,
                storage=storage,
                url_given=url,
            ).run(progress)
            outcomes.append(outcome)
            if outcome.refused:
                click.echo(f"{path}: refused: {outcome.refused}", err=True)
            elif outcome.interrupted:
                click.echo(
                    f"{path}: interrupted: {outcome.interrupted}. Run the same command again "
                    "to continue where it stopped.",
                    err=True,
                )
            elif not as_json:
                click.echo(f"{outcome.reference}  {path}")
    if as_json:
        click.echo(json.dumps([o.document for o in outcomes if o.document], indent=2))
    if any(o.document is None for o in outcomes):
        raise SystemExit(1)
