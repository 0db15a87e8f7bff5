"""Great Expectations data docs, built to a folder and readable offline.

Every gate run stores its validation result (trimmed: at most 20 example rows/keys per rule) as JSON under
``<warehouse_root>/_data_docs/results/<suite>/<run_id>.json``. ``build_data_docs`` loads every rule file's suites and
the latest stored results into an ephemeral GX context, builds GX's static site in a temporary folder, rewrites every
CDN ``<link>``/``<script>``/``<img>`` of every page to the vendored copies in ``expectations/_assets/vendor`` (copied to
``static/vendor/`` in the site), fails if any ``http(s)://`` asset is left, and copies the site to
``<warehouse_root>/_data_docs/site/`` (a local folder or S3, through ``lakehouse.storage.Storage``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from lakehouse.errors import LakehouseError
from lakehouse.settings import Settings

ASSETS_DIR = Path(__file__).resolve().parent / "_assets" / "vendor"
KEEP_ROWS = 20
SITE_NAME = "lakehouse"

# CDN reference (prefix match, query strings ignored) -> vendored file(s) under static/vendor/.
CDN_ASSETS: dict[str, tuple[str, ...]] = {
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": ("vendor/bootstrap-table-1.19.1.min.css",),
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": ("vendor/bootstrap-4.3.1.min.css",),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css": (
        "vendor/bootstrap-table-filter-control-1.19.1.min.css",
    ),
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css": (
        "vendor/bootstrap-table-filter-control-1.19.1.min.css",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (
        "vendor/bootstrap-datepicker-1.9.0.min.css",
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (
        "vendor/bootstrap-prefers-dark-1.1.0.min.css",
    ),
    "https://cdn.jsdelivr.net/npm/vega@5": ("vendor/vega-5.33.1.min.js",),
    "https://cdn.jsdelivr.net/npm/vega-lite@5": ("vendor/vega-lite-5.23.0.min.js",),
    "https://cdn.jsdelivr.net/npm/vega-embed@6": ("vendor/vega-embed-6.29.0.min.js",),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "vendor/fontawesome-6.6.0/css/fontawesome.min.css",
        "vendor/fontawesome-6.6.0/css/solid.min.css",
    ),
    "https://code.jquery.com/jquery-3.7.1.min.js": ("vendor/jquery-3.7.1.min.js",),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": ("vendor/popper-1.12.9.min.js",),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": ("vendor/bootstrap-4.3.1.min.js",),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": ("vendor/bootstrap-table-1.19.1.min.js",),
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js": (
        "vendor/bootstrap-table-filter-control-1.19.1.min.js",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (
        "vendor/bootstrap-datepicker-1.9.0.min.js",
    ),
    # GX ships its logo in the site's static/images/; only the page template points at the remote copy.
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png": ("images/logo-long.png",),
    # GX's default stylesheet (inlined in every page) draws the dark-mode logo as a CSS background.
    "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png": ("vendor/lakehouse-logo-dark.svg",),
}

# Tags that load something: <link ... href=...>, <script ... src=...>, <img ... src=...>.
_LINK = re.compile(r"<link\b[^>]*>", re.IGNORECASE)
_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=[^>]*>\s*</script>", re.IGNORECASE)
_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r"""\b(href|src)\s*=\s*(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_REMOTE = re.compile(r"^(https?:)?//", re.IGNORECASE)
_LOCAL_STATIC = re.compile(r"""\b(href|src)=(["'])(?:\./|(?:\.\./)+)static/([^"']*)""", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*(['"]?)((?:https?:)?//[^'")\s]+)\1\s*\)""", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------------------------
# Locations
# ---------------------------------------------------------------------------------------------------------------
def docs_root(settings: Settings) -> str:
    """``<warehouse_root>/_data_docs``: stored results and the built site."""
    return f"{str(settings.warehouse_root).rstrip('/')}/_data_docs"


def site_dir(settings: Settings) -> str:
    """The built site's folder; open ``index.html`` in it."""
    return f"{docs_root(settings)}/site"


def results_dir(settings: Settings) -> str:
    """Where each gate run's trimmed validation result is stored as JSON."""
    return f"{docs_root(settings)}/results"


# ---------------------------------------------------------------------------------------------------------------
# Storing results
# ---------------------------------------------------------------------------------------------------------------
_ROW_LISTS = ("unexpected_list", "unexpected_index_list", "partial_unexpected_list", "partial_unexpected_index_list",
              "partial_unexpected_counts", "unexpected_counts")


def trimmed_copy(validation):
    """A shallow copy of a GX suite validation result whose per-row lists hold at most ``KEEP_ROWS`` entries.

    Serializing GX results goes through GX's slow per-value converter: trimming first keeps storing a result with
    hundreds of thousands of failing keys at a fraction of a second.
    """
    import copy

    out = copy.copy(validation)
    out.results = []
    for item in validation.results:
        small = copy.copy(item)
        res = dict(item.result or {})
        for key in _ROW_LISTS:
            if isinstance(res.get(key), list):
                res[key] = res[key][:KEEP_ROWS]
        details = res.get("details")
        if isinstance(details, dict) and isinstance(details.get("unexpected_rows"), list):
            res["details"] = {**details, "unexpected_rows": details["unexpected_rows"][:KEEP_ROWS]}
        small.result = res
        out.results.append(small)
    return out


def trim_result(result_dict: dict, *, hidden_columns: tuple[str, ...] = ("_gate_row_id",)) -> dict:
    """Cut a validation result's per-row lists to ``KEEP_ROWS`` entries and drop gate-internal columns."""
    out = json.loads(json.dumps(result_dict, default=str))
    for item in out.get("results", []):
        res = item.get("result") or {}
        for key in _ROW_LISTS:
            if isinstance(res.get(key), list):
                res[key] = res[key][:KEEP_ROWS]
        res.pop("unexpected_index_query", None)
        for key in ("unexpected_index_list", "partial_unexpected_index_list"):
            if isinstance(res.get(key), list):
                res[key] = [{k: v for k, v in e.items() if k not in hidden_columns} if isinstance(e, dict) else e
                            for e in res[key]]
        if isinstance(res.get("unexpected_index_column_names"), list):
            res["unexpected_index_column_names"] = [c for c in res["unexpected_index_column_names"] if c not in hidden_columns]
        details = res.get("details")
        if isinstance(details, dict) and isinstance(details.get("unexpected_rows"), list):
            details["unexpected_rows"] = [
                {k: v for k, v in r.items() if k not in hidden_columns} if isinstance(r, dict) else r
                for r in details["unexpected_rows"][:KEEP_ROWS]
            ]
        cfg = item.get("expectation_config") or {}
        rf = (cfg.get("kwargs") or {}).get("result_format")
        if isinstance(rf, dict) and isinstance(rf.get("unexpected_index_column_names"), list):
            rf["unexpected_index_column_names"] = [c for c in rf["unexpected_index_column_names"] if c not in hidden_columns]
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]", "_", name)


def store_validation(settings: Settings, validation, *, table: str, scope: str, run_id: str) -> str:
    """Store a gate's validation result (trimmed) for the data docs; returns its URI."""
    from expectations.gate import suite_name
    from lakehouse.storage import Storage

    doc = trim_result(trimmed_copy(validation).to_json_dict())
    doc.setdefault("meta", {})["lakehouse"] = {"table": table, "scope": scope, "run_id": run_id}
    uri = f"{results_dir(settings)}/{_safe(suite_name(table, scope))}/{_safe(run_id)}.json"
    Storage(settings).write_bytes(uri, json.dumps(doc, default=str, sort_keys=True).encode("utf-8"))
    return uri


# ---------------------------------------------------------------------------------------------------------------
# Offline post-processing
# ---------------------------------------------------------------------------------------------------------------
def _vendored(url: str) -> tuple[str, ...] | None:
    base = url.split("?", 1)[0].split("#", 1)[0]
    return CDN_ASSETS.get(base)


def make_offline(html: str, *, static_prefix: str) -> str:
    """Point every CDN asset of a GX page at its local copy under ``static_prefix``; drop SRI/CORS attributes."""

    def rewrite(tag: str, kind: str) -> str:
        m = _ATTR.search(tag)
        if not m or not _REMOTE.match(m.group(3).strip()):
            return tag
        files = _vendored(m.group(3).strip())
        if files is None:
            return tag  # left for the final check to report
        tag = re.sub(r"""\s(integrity|crossorigin)\s*=\s*(["']).*?\2""", "", tag, flags=re.IGNORECASE | re.DOTALL)
        tag = re.sub(r"\s(integrity|crossorigin)(?=[\s>/])", "", tag, flags=re.IGNORECASE)
        out = []
        for f in files:
            out.append(tag[: m.start(3)] + static_prefix + f + tag[m.end(3):])
            m2 = _ATTR.search(out[-1])
            assert m2 is not None
        return "\n".join(out)

    html = _LINK.sub(lambda m: rewrite(m.group(0), "link"), html)
    html = _SCRIPT.sub(lambda m: rewrite(m.group(0), "script"), html)
    html = _IMG.sub(lambda m: rewrite(m.group(0), "img"), html)
    # GX counts the dots of a suite name to build "../" chains and gets the favicon one level short for
    # validation pages: re-anchor every reference to the site's static/ folder.
    html = _LOCAL_STATIC.sub(lambda m: f"{m.group(1)}={m.group(2)}{static_prefix}{m.group(3)}", html)
    return rewrite_css_urls(html, static_prefix=static_prefix)


def rewrite_css_urls(text: str, *, static_prefix: str) -> str:
    """Point CSS ``url(https://...)`` references (inline styles or stylesheets) at the vendored files."""

    def repl(m: re.Match) -> str:
        files = _vendored(m.group(2))
        if files is None:
            return m.group(0)
        return f"url('{static_prefix}{files[0]}')"

    return _CSS_URL.sub(repl, text)


def remote_assets(html: str) -> list[str]:
    """Every ``http(s)://`` (or protocol-relative) URL a page would load: stylesheets, scripts, images, icons."""
    found = []
    for rx in (_LINK, _SCRIPT, _IMG):
        for tag in rx.findall(html):
            m = _ATTR.search(tag)
            if m and _REMOTE.match(m.group(3).strip()):
                found.append(m.group(3).strip())
    found += re.findall(r"""url\(\s*['"]?((?:https?:)?//[^'")\s]+)""", html, flags=re.IGNORECASE)
    found += re.findall(r"""@import\s+['"]((?:https?:)?//[^'"]+)""", html, flags=re.IGNORECASE)
    return found


def make_site_offline(site: Path) -> None:
    """Copy the vendored assets into ``site/static/vendor`` and rewrite every page; raise if a remote asset remains."""
    target = site / "static" / "vendor"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(ASSETS_DIR, target)
    leftovers: dict[str, list[str]] = {}
    for page in sorted(site.rglob("*.html")) + sorted(site.rglob("*.css")):
        if target in page.parents:
            continue  # the vendored files themselves (checked when vendored: no remote references)
        rel = os.path.relpath(site / "static", page.parent).replace(os.sep, "/") + "/"
        text = page.read_text(encoding="utf-8")
        text = make_offline(text, static_prefix=rel) if page.suffix == ".html" else rewrite_css_urls(text, static_prefix=rel)
        page.write_text(text, encoding="utf-8")
        left = remote_assets(text)
        if left:
            leftovers[str(page.relative_to(site))] = left
    if leftovers:
        sample = "; ".join(f"{p}: {', '.join(sorted(set(u)))}" for p, u in list(leftovers.items())[:3])
        raise LakehouseError(
            f"data docs still load remote assets ({sample}); vendor them in expectations/_assets and map them in "
            "expectations.docs.CDN_ASSETS"
        )


# ---------------------------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------------------------
def _docs_context(base_directory: Path):
    """An ephemeral GX context whose one data-docs site is a local folder."""
    from expectations.gate import _gx_context

    ctx = _gx_context()
    ctx.add_data_docs_site(
        SITE_NAME,
        {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(base_directory)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    return ctx


def _load_results(settings: Settings, keep_runs: int) -> list[dict]:
    from lakehouse.storage import Storage

    storage = Storage(settings)
    by_suite: dict[str, list] = {}
    for info in storage.list_files(results_dir(settings), recursive=True):
        if info.uri.endswith(".json"):
            by_suite.setdefault(info.uri.rsplit("/", 2)[-2], []).append(info)
    docs = []
    for infos in by_suite.values():
        for info in sorted(infos, key=lambda i: (i.mtime_ns, i.uri))[-keep_runs:]:
            docs.append(json.loads(storage.read_bytes(info.uri)))
    return docs


def build_data_docs(settings: Settings, *, keep_runs: int = 30, rules_dir: Path | str | None = None) -> str:
    """Build the data docs (every rule file's suites + the last ``keep_runs`` results per suite); returns index.html."""
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResultSchema
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    from expectations.gate import suite_name
    from expectations.rules import all_rule_files, load_rule_file
    from lakehouse.catalog import TableSpec, sql_ref
    from lakehouse.storage import Storage

    def resolve_table(qualified: str) -> str:
        layer, name = qualified.split(".", 1)
        return sql_ref(TableSpec(layer, name), settings)

    with tempfile.TemporaryDirectory(prefix="lakehouse-docs-") as tmp:
        local = Path(tmp) / "site"
        ctx = _docs_context(local)
        suites: set[str] = set()
        for path in all_rule_files(rules_dir):
            suite = load_rule_file(path)
            for scope in ("row", "table"):
                rules = suite.for_scope(scope)
                if rules:
                    name = suite_name(suite.table, scope)
                    ctx.suites.add(gx.ExpectationSuite(
                        name=name, expectations=[r.to_gx(resolve_table=resolve_table) for r in rules],
                        meta={"table": suite.table, "scope": scope, "description": suite.description},
                    ))
                    suites.add(name)
        schema = ExpectationSuiteValidationResultSchema()
        store = ctx.validation_results_store
        for doc in _load_results(settings, keep_runs):
            result = schema.load(doc)
            meta = doc.get("meta") or {}
            name = doc.get("suite_name") or meta.get("expectation_suite_name")
            run = meta.get("run_id") or {}
            run_id = RunIdentifier(run_name=run.get("run_name"), run_time=run.get("run_time"))
            ours = meta.get("lakehouse") or {}
            key = ValidationResultIdentifier(
                expectation_suite_identifier=ExpectationSuiteIdentifier(name=name),
                run_id=run_id,
                batch_identifier=_safe(f"{ours.get('table', name)}-{ours.get('scope', 'row')}-{ours.get('run_id', 'batch')}"),
            )
            store.set(key, result)
        ctx.build_data_docs(site_names=[SITE_NAME])
        make_site_offline(local)
        target = site_dir(settings)
        storage = Storage(settings)
        storage.delete_dir(target)
        for f in sorted(local.rglob("*")):
            if f.is_file():
                storage.write_bytes(f"{target}/{f.relative_to(local).as_posix()}", f.read_bytes())
    return f"{target}/index.html"
