"""The portal's exceptions: one tree, drawn here; each package's own errors are leaves of it.

Every error carries a plain ``message`` that says what to do next (people read it) and a stable
``code``, a word naming the failure (API clients branch on it, the audit log records it). None
carries an HTTP status: ``portal.web.errors`` is the one place that maps a class to its status,
and the command line maps them to exit codes in its own ``main``. A kind below says what went
wrong, not who noticed: a review that is not open is a ``Conflict`` whether the API, a page, tus
or the command line asked.

::

    PortalError                     base class: catch this to catch everything below
    ├── Refusal                     refused: nothing was done (4xx on the web, exit 2 in a shell)
    │   ├── Invalid                 the request cannot be read or carried out as asked
    │   │   ├── exchange.Refused    understood, and refused; its code says why (invalid_state, ...)
    │   │   │   └── multipart.FormRefused  a multipart form that cannot be read
    │   │   ├── references.InvalidReference  not a reference (a typo the check character caught)
    │   │   ├── exchange.ChecksumMismatch    the bytes received are not the bytes announced
    │   │   ├── exchange.FormMistake         a form value that cannot be read, shown on its field
    │   │   ├── uploads.BadTusRequest        a missing or malformed tus header or metadata
    │   │   ├── uploads.VersionUnsupported   no (or another) Tus-Resumable version
    │   │   ├── uploads.PartChecksumMismatch a PATCH's bytes do not match its Upload-Checksum
    │   │   ├── text.TextRefused             control characters, too short or too long
    │   │   ├── accounts.AccountError        an accounts request that cannot be carried out
    │   │   │   └── accounts.OperatorRefused no named, active operator for a command
    │   │   ├── settings.SettingsError       a PORTAL_* variable the portal cannot use
    │   │   └── certificates.CertificateInvalid  not a certificate this portal signed
    │   ├── Unauthenticated         no (valid) credentials: sign in, or send a token
    │   │   └── signin.SignInRefused         a sign-in step failed (maybe locked for a while)
    │   ├── NotAllowed              the caller may not do this here (a forged or stale form)
    │   ├── NotFound                absent, or not the caller's to see (never told apart)
    │   │   └── exchange.NotFound            ... of a reference the caller typed
    │   ├── Conflict                not in a state that allows it
    │   │   ├── exchange.ReviewNotOpen       no uploads before opening or after closing
    │   │   ├── uploads.OffsetConflict       Upload-Offset is not where the upload stands
    │   │   ├── destruction.SecondPersonRequired  the requester cannot approve their own request
    │   │   ├── alerts.AlreadyAcknowledged   an alert acknowledged already
    │   │   ├── integrity.AuditLogDamaged    the log refused an export's own event
    │   │   ├── demo.DemoRefused             demo data asked for where it may not go
    │   │   └── migrate.MigrationRefused     a migration that cannot run as asked
    │   ├── Gone                    existed once, and is no more
    │   │   ├── exchange.Gone                destroyed at the end of its review (the record stays)
    │   │   └── uploads.UploadExpired        an upload idle too long; start again
    │   ├── TooLarge                over a size limit; nothing was kept
    │   ├── UnsupportedType         content, or a body, of a type not accepted
    │   │   ├── exchange.TypeRefused         the content is not an allowed type
    │   │   ├── exchange.WrongBodyType       an upload's body not sent as application/octet-stream
    │   │   └── uploads.WrongContentType     a PATCH body not application/offset+octet-stream
    │   └── TooMany                 too many at once
    │       └── uploads.TooManyUploads       too many unfinished uploads for one person
    ├── Unavailable                 a service the portal needs cannot answer just now (503)
    └── Failure                     the server's own failure (a 500 on the web: never the detail)
        ├── scanning.ScanError               the scanner's errors
        │   └── scanning.ScannerUnavailable  clamd could not give a verdict
        ├── keys.KeyServiceRefused           the key service lacks this database's keys
        │   └── keys.NotInitialised          ``portal init`` has not run (exit 2)
        ├── clamd_local.ClamdStartError      a private clamd did not start
        ├── backup.BackupError               backup and restore (exit 1, BackupRefused exit 2)
        │   ├── backup.BackupRefused         a folder, database or store backup may not use
        │   ├── backup.BackupInvalid         the backup does not verify; nothing was restored
        │   └── backup.BackupFailed          a tool or a store failed while working
        └── destruction.DestructionIncomplete  a run could not verify what it destroyed

Private signals that never leave their module (``filetypes.zips._Refused``, a scanner's
``_Unscannable``, the console stream's ``ClientGone``) and the command line's click exceptions are
not errors of the portal and stay outside the tree.
"""

from __future__ import annotations


class PortalError(Exception):
    """Base class of every exception the portal raises on purpose."""

    code = "error"
    message: str

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Refusal(PortalError):
    """The request was refused and nothing was done: the caller can fix it and ask again."""

    code = "refused"


class Invalid(Refusal):
    code = "bad_request"


class Unauthenticated(Refusal):
    code = "unauthenticated"


class NotAllowed(Refusal):
    code = "not_allowed"


class NotFound(Refusal):
    code = "not_found"

    def __init__(
        self,
        message: str = (
            "There is nothing here. Check the address or reference, or go back to your home page."
        ),
        *,
        code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)


class Conflict(Refusal):
    code = "conflict"


class Gone(Refusal):
    code = "gone"


class TooLarge(Refusal):
    code = "too_large"


class UnsupportedType(Refusal):
    code = "unsupported_type"


class TooMany(Refusal):
    code = "too_many"


class Unavailable(PortalError):
    code = "unavailable"


class Failure(PortalError):
    code = "internal_error"
