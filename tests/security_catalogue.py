"""Every hostile test in the suite, by class: the source of the table in docs/security.md.

Each class names its tests by pytest node id patterns (``path::function``, shell-style wildcards,
parametrised cases counted one by one). ``tests/test_security_catalogue.py`` counts what the suite
collects, fails when a pattern matches nothing or the table in the document differs, and prints the
table to paste; ``python -m tests.security_catalogue`` writes it into the document.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "security.md"
START = "<!-- hostile-tests:start -->"
END = "<!-- hostile-tests:end -->"


@dataclass(frozen=True)
class TestClass:
    name: str
    what: str
    patterns: tuple[str, ...]


CATALOGUE: tuple[TestClass, ...] = (
    TestClass(
        "Authorisation matrix",
        "every route (from the route table) × every role × another organisation's object; "
        "refusals byte-identical to not-found; each layer (route rule, policy) alone",
        (
            "tests/portal/web/test_routes.py::*",
            "tests/portal/exchange/test_refusals.py::*",
            "tests/portal/exchange/test_exchange_pages.py::test_another_organisations_document_*",
            "tests/portal/exchange/test_exchange_pages.py::test_review_page_shows_each_caller_only_*",
            "tests/portal/exchange/test_exchange_hostile.py::test_uploads_need_a_request_and_case_of_*",
            "tests/portal/exchange/test_exchange_hostile.py::test_team_notes_are_invisible_*",
            "tests/portal/web/test_policy_and_route_layers.py::*",
            "tests/portal/exchange/test_manage_no_probing.py::*",
        ),
    ),
    TestClass(
        "CSRF",
        "state-changing requests without, with a stale or another session's token",
        (
            "tests/portal/accounts/test_signin.py::test_a_post_without_a_valid_csrf_token_is_refused",
            "tests/portal/accounts/test_signin.py::test_a_csrf_token_works_only_in_the_session_*",
            "tests/portal/accounts/test_signin.py::test_a_token_from_before_sign_in_or_an_ended_*",
            "tests/portal/uploads/test_tus.py::test_the_upload_page_script_uploads_with_its_session_*",
            "tests/portal/exchange/test_exchange_pages.py::test_the_upload_forms_token_is_its_first_*",
            "tests/multinode/test_sessions.py::test_signed_in_on_node_a_a_form_posted_*",
        ),
    ),
    TestClass(
        "Sessions",
        "rotation, revocation, idle and absolute time-outs, cookies, security headers",
        (
            "tests/portal/accounts/test_signin.py::test_the_session_id_changes_at_sign_in",
            "tests/portal/accounts/test_signin.py::test_the_database_holds_only_hashes_of_session_ids",
            "tests/portal/accounts/test_signin.py::test_sign_out_ends_the_session",
            "tests/portal/accounts/test_signin.py::test_idle_sessions_expire",
            "tests/portal/accounts/test_signin.py::test_sessions_end_after_twelve_hours_however_busy",
            "tests/portal/accounts/test_signin.py::test_disabling_a_user_ends_their_session_*",
            "tests/portal/accounts/test_signin.py::test_every_response_carries_the_security_headers",
            "tests/portal/accounts/test_signin.py::test_behind_tls_cookies_are_host_prefixed_*",
            "tests/portal/accounts/test_signin.py::test_api_tokens_need_a_fresh_code_*",
            "tests/portal/accounts/test_signin.py::test_a_revoked_token_stops_working",
        ),
    ),
    TestClass(
        "Sign-in, throttling and enumeration",
        "identical answers and timing for unknown accounts, lock-out and slowing, passwords",
        (
            "tests/portal/accounts/test_signin.py::test_unknown_user_*",
            "tests/portal/accounts/test_signin.py::test_failed_sign_ins_are_audited_without_the_email",
            "tests/portal/accounts/test_signin.py::test_lock*",
            "tests/portal/accounts/test_enrolment.py::test_password_rules",
            "tests/portal/accounts/test_enrolment.py::test_a_short_password_must_reach_the_top_score_*",
            "tests/portal/accounts/test_throttle.py::*",
            "tests/portal/web/test_proxies.py::*",
            "tests/portal/web/test_health.py::test_readyz_tells_a_remote_caller_the_status_only",
            "tests/portal/web/test_health.py::test_readyz_through_a_trusted_proxy_is_not_local",
            "tests/portal/web/test_health.py::test_readyz_details_for_an_admin_token_*",
            "tests/portal/accounts/test_enrolment.py::test_an_enrolment_link_expires",
            "tests/portal/accounts/test_enrolment.py::test_a_new_link_replaces_the_old_one",
            "tests/portal/accounts/test_enrolment.py::test_a_half_enrolled_account_cannot_sign_in",
        ),
    ),
    TestClass(
        "TOTP and recovery codes",
        "guessing, replay, the same code from two processes at once, recovery codes once",
        (
            "tests/portal/accounts/test_signin.py::test_a_thousand_wrong_codes_*",
            "tests/portal/accounts/test_signin.py::test_a_code_is_never_accepted_twice",
            "tests/portal/accounts/test_signin.py::test_one_code_sent_twice_at_once_*",
            "tests/portal/accounts/test_signin.py::test_a_recovery_code_works_once",
        ),
    ),
    TestClass(
        "tus uploads",
        "creation checks, offsets, cut-short and failed parts, expiry, termination, ciphertext",
        ("tests/portal/uploads/test_tus.py::*",),
    ),
    TestClass(
        "Multipart and upload bodies",
        "form reader on bad bodies, wrong content types, checksum mismatch, kill -9 mid-upload",
        (
            "tests/portal/exchange/test_exchange_pages.py::test_the_form_reader_*",
            "tests/portal/exchange/test_exchange_hostile.py::test_a_checksum_mismatch_keeps_nothing",
            "tests/portal/exchange/test_exchange_hostile.py::test_an_upload_sent_as_a_form_*",
            "tests/portal/exchange/test_exchange_hostile.py::test_kill_9_mid_upload_*",
            "tests/portal/exchange/test_exchange_hostile.py::test_a_closed_review_accepts_no_uploads",
        ),
    ),
    TestClass(
        "File names and types",
        "hostile names stored and shown safely, the type decided by content, never by the name",
        (
            "tests/portal/exchange/test_exchange_hostile.py::test_hostile_file_names_*",
            "tests/portal/exchange/test_exchange_pages.py::test_hostile_file_names_*",
            "tests/portal/exchange/test_exchange_hostile.py::test_a_disallowed_type_is_refused_*",
            "tests/portal/exchange/test_exchange_pages.py::test_a_disallowed_type_is_refused_*",
            "tests/portal/filetypes/test_filetypes.py::test_the_name_*",
            "tests/portal/filetypes/test_filetypes.py::test_refused_files_say_what_was_found",
            "tests/portal/filetypes/test_filetypes.py::test_text_types_are_decided_by_content",
            "tests/portal/filetypes/test_filetypes.py::test_detect_never_raises_*",
            "tests/portal/exchange/test_exchange_hostile.py::test_the_saved_extension_comes_from_*",
            "tests/portal/exchange/test_exchange_pages.py::test_a_page_download_is_saved_with_the_types_*",
            "tests/portal/cli/test_cli_exchange.py::test_the_saved_extension_is_the_types_not_*",
            "tests/portal/cli/test_cli_exchange.py::test_local_file_names_are_never_paths",
            "tests/portal/filetypes/test_filetypes.py::test_a_download_name_*",
        ),
    ),
    TestClass(
        "Archives",
        "ZIP and compound files: bombs, overlaps, duplicates, encryption, truncation, EICAR inside",
        (
            "tests/portal/filetypes/test_filetypes.py::test_truncated_*",
            "tests/portal/filetypes/test_filetypes.py::test_a_zip_*",
            "tests/portal/filetypes/test_filetypes.py::test_overlapping_members_are_refused",
            "tests/portal/filetypes/test_filetypes.py::test_absurd_member_names_are_refused",
            "tests/portal/filetypes/test_filetypes.py::test_duplicate_member_names_are_refused",
            "tests/portal/filetypes/test_filetypes.py::test_a_file_that_is_both_odf_and_ooxml_is_refused",
            "tests/portal/filetypes/test_filetypes.py::test_encrypted_zip_members_are_refused",
            "tests/portal/filetypes/test_filetypes.py::test_head_only_zip_verdicts_are_cautious",
            "tests/portal/filetypes/test_filetypes.py::test_a_failing_or_lying_container_is_a_refusal",
            "tests/portal/exchange/test_exchange_hostile.py::test_eicar_zipped_*",
            "tests/portal/exchange/test_exchange_hostile.py::test_office_documents_are_scanned_member_*",
            "tests/portal/exchange/test_exchange_hostile.py::test_zips_the_scanner_cannot_see_into_*",
            "tests/portal/filetypes/test_filetypes.py::test_zips_the_scanner_cannot_see_into_*",
            "tests/portal/filetypes/test_scanning_archives.py::*",
        ),
    ),
    TestClass(
        "Scanner faults",
        "scanner down, failing, answering badly: documents wait, never released unscanned",
        (
            "tests/portal/exchange/test_exchange_hostile.py::test_with_the_scanner_down_*",
            "tests/portal/exchange/test_exchange_hostile.py::test_documents_the_scanner_keeps_failing_*",
            "tests/portal/uploads/test_tus.py::test_eicar_through_tus_*",
            "tests/portal/test_scanner_faults.py::*",
        ),
    ),
    TestClass(
        "Size limits",
        "one byte over a limit, limits before a byte is read",
        (
            "tests/portal/exchange/test_exchange_hostile.py::test_one_byte_over_the_limit_*",
            "tests/portal/uploads/test_tus.py::test_a_smaller_limit_is_enforced_at_creation",
            "tests/portal/web/test_bodies.py::*",
            "tests/deploy/test_nginx.py::test_nginx_refuses_a_large_body_to_sign_in_*",
        ),
    ),
    TestClass(
        "Fuzzing",
        "schemathesis over the OpenAPI documents; hostile headers, bodies and types on every "
        "route; strict JSON bodies",
        (
            "tests/portal/web/test_openapi.py::test_schemathesis_*",
            "tests/portal/console/test_console_openapi.py::*",
            "tests/portal/web/test_hostile_fuzz.py::*",
            "tests/portal/web/test_strict_bodies.py::*",
            "tests/portal/exchange/test_exchange_hostile.py::test_numbers_in_other_digits_*",
            "tests/portal/exchange/test_exchange_hostile.py::test_deeply_nested_json_*",
        ),
    ),
    TestClass(
        "Plaintext canaries",
        "typed words and file names searched for in tables, WAL, backups, blobs, logs, the API",
        (
            "tests/portal/destruction/test_destruction_leaves_nothing.py::*",
            "tests/portal/exchange/test_sealed_text.py::*",
            "tests/portal/uploads/test_tus.py::test_parts_and_names_are_ciphertext_at_rest",
            "tests/portal/test_logs.py::*",
        ),
    ),
    TestClass(
        "Command-line refusals",
        "a 4xx is final, only the network and 5xx are interruptions; rejected told from unscanned",
        (
            "tests/portal/cli/test_cli_upload.py::test_a_closed_review_is_a_refusal_*",
            "tests/portal/cli/test_cli_upload.py::test_an_unreachable_portal_is_named_*",
            "tests/portal/cli/test_cli_upload.py::test_the_address_says_where_it_came_from",
            "tests/portal/cli/test_cli_upload.py::test_only_the_network_and_5xx_are_interruptions",
            "tests/portal/cli/test_cli_exchange.py::test_a_rejected_document_is_told_from_one_not_*",
            "tests/portal/cli/test_cli_exchange.py::test_not_found_is_said_in_the_commands_words_*",
            "tests/portal/destruction/test_certificate_independent.py::test_on_another_machine_verify_*",
        ),
    ),
    TestClass(
        "Blob tampering",
        "truncation, bit flips, dropped, duplicated and reordered segments, swapped blobs",
        ("tests/storage/test_tamper.py::*",),
    ),
    TestClass(
        "Audit log tampering",
        "changed, deleted, inserted, reordered events; cut-back logs; witness disagreement",
        (
            "tests/audit/test_verification.py::*",
            "tests/audit/test_witness.py::*",
            "tests/audit/test_exports_witness.py::*",
            "tests/portal/console/test_console_witness.py::*",
        ),
    ),
)


def files() -> list[str]:
    return sorted({pattern.split("::")[0] for test in CATALOGUE for pattern in test.patterns})


def collect(paths: Iterable[str]) -> list[str]:
    """The node ids pytest collects from these files (in a fresh interpreter)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    if not ids:
        raise RuntimeError(f"collection found nothing:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return ids


def _function(node_id: str) -> str:
    return node_id.split("[", 1)[0]


def counts(node_ids: Iterable[str]) -> tuple[dict[str, int], list[str]]:
    """How many collected tests each class holds, and the patterns that match none."""
    functions = [_function(node_id) for node_id in node_ids]
    found: dict[str, int] = {}
    unmatched: list[str] = []
    for test in CATALOGUE:
        matched = set()
        for pattern in test.patterns:
            hits = {i for i, name in enumerate(functions) if fnmatch.fnmatchcase(name, pattern)}
            if not hits:
                unmatched.append(pattern)
            matched |= hits
        found[test.name] = len(matched)
    return found, unmatched


def matrix_figures() -> str:
    from tests.portal.web.route_rules import WHO
    from tests.portal.web.test_routes import TABLE

    return (
        f"The authorisation matrix's cases check {len(TABLE)} routes × {len(WHO)} callers = "
        f"{len(TABLE) * len(WHO)} answers against the access table."
    )


def table(found: dict[str, int]) -> str:
    lines = ["| Class | What the tests do | Tests |", "|---|---|---:|"]
    for test in CATALOGUE:
        lines.append(f"| {test.name} | {test.what} | {found[test.name]} |")
    lines.append(
        f"| **All classes** | (a test in two classes counts once per class) | "
        f"{sum(found.values())} |"
    )
    return "\n".join(lines) + "\n\n" + matrix_figures()


_BLOCK = re.compile(re.escape(START) + r"\n(.*?)" + re.escape(END), re.DOTALL)


def written_table(text: str) -> str:
    match = _BLOCK.search(text)
    return match.group(1).strip() if match else ""


def main() -> None:
    found, unmatched = counts(collect(files()))
    if unmatched:
        raise SystemExit(f"patterns that match no test: {unmatched}")
    text = DOCUMENT.read_text()
    if not _BLOCK.search(text):
        raise SystemExit(f"{DOCUMENT} has no {START} … {END} block")
    DOCUMENT.write_text(_BLOCK.sub(lambda _: f"{START}\n{table(found)}\n{END}", text))
    print(table(found))


if __name__ == "__main__":
    main()
