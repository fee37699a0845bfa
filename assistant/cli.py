"""Command line: ``assistant ingest | ask | status | serve | users | eval`` (also ``python -m assistant``).

Every command goes through the ``Assistant``. User mistakes (any ``AssistantError``) end with a one-line message on
stderr and a non-zero exit status, never a traceback. Text that comes from documents, file names, the store or a
model passes through ``terminal.terminal_text`` before it is printed.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from .errors import AssistantError
from .settings import Settings
from .terminal import terminal_json, terminal_text

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Ask questions of an Arabic/English document collection; answers cite the exact passages.",
    pretty_exceptions_enable=False,
)

IndexOpt = typer.Option(None, "--index", help="Index folder (default: ./index of the project, or $ASSISTANT_INDEX_DIR).")
StoreOpt = typer.Option(
    None, "--store", help="Where the collection is: a folder, or a database URL such as postgresql://user@host/db "
    "(default: $ASSISTANT_STORE, else the --index folder).")
EmbedderOpt = typer.Option(
    None, "--embedder", help="Embedding model: the default bundled multilingual-e5-small, or a sentence-transformers "
    "folder / cached model name."
)
ThreadsOpt = typer.Option(None, "--threads", help="CPU threads for embedding and search (default: library default).")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {terminal_text(message)}", err=True)
    raise typer.Exit(code)


def _notices(asst: Any) -> None:
    """What the store repaired while the command ran, on stderr."""
    for line in asst.take_notices() if asst is not None else ():
        typer.echo(f"note: {terminal_text(line)}", err=True)


def _warn(message: str) -> None:
    typer.echo(f"warning: {terminal_text(message)}", err=True)


def _settings(index: Optional[Path], embedder: Optional[str], threads: Optional[int], *,
              store: Optional[str] = None, **overrides: Any) -> Settings:
    if index is not None and store is not None:
        _fail("give either --index or --store, not both")
    try:
        settings = Settings.from_env(index_dir=index, embedder=embedder, threads=threads, **overrides)
        if index is not None:  # an explicit folder wins over $ASSISTANT_STORE
            settings = settings.with_overrides(store=str(index))
        return settings.with_overrides(store=store)
    except AssistantError as e:
        _fail(str(e))
        raise  # unreachable


def _assistant(settings: Settings, *, default_sources: bool):
    from .assistant import Assistant

    # only the default index is built from the default sources on first use
    return Assistant(settings=settings, sources=None if default_sources else [])




@app.command()
def ingest(
    paths: List[Path] = typer.Argument(None, help="Files or folders to index (default: the sources already in the "
                                       "index, or the seed documents)."),
    index: Optional[Path] = IndexOpt,
    store: Optional[str] = StoreOpt,
    rebuild: bool = typer.Option(False, "--rebuild", help="Re-embed everything from scratch."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Fail at once when another process is writing to the "
                                 "index, instead of waiting for it."),
    embedder: Optional[str] = EmbedderOpt,
    threads: Optional[int] = ThreadsOpt,
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="Processes that ingest together. A database store (--store "
        "postgresql://...) shares the files out through the database; `assistant ingest` of the same folders on "
        "other machines joins in the same way."),
    worker: bool = typer.Option(False, "--worker", hidden=True, help="One of the --workers: report nothing."),
) -> None:
    """Index documents (txt, md, html, pdf, docx). Only new or changed files are embedded."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .ingest_shared import shares_ingest

    settings = _settings(index, embedder, threads, store=store)
    if workers > 1 and not settings.embedding.threads:
        settings = settings.with_overrides(threads=max(1, (os.cpu_count() or 1) // workers))  # they share the cores
    children: list[subprocess.Popen] = []
    asst = None
    try:
        asst = _assistant(settings, default_sources=True)
        if workers > 1 and not shares_ingest(asst.store):
            _fail("--workers needs a database store (--store postgresql://...): a folder index is written by one "
                  "process at a time")
        if workers > 1 and rebuild:
            _fail("--rebuild runs in one process, in one transaction (answers come from the old collection until it "
                  "commits): run it without --workers")
        targets: list[str] | None = [str(p) for p in paths] if paths else None
        if targets is None and asst.store.exists():
            # the recorded sources, read as stored: a rebuild may be switching to another embedder
            targets = sorted(asst.store.manifest().sources) or None

        def start_workers() -> None:  # once this process has planned (or joined) the run: they join it
            children.extend(_start_workers(workers - 1, targets or list(asst.settings.store.sources), asst, embedder,
                                           settings.embedding.threads))

        with Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), transient=True, disable=worker or not sys.stderr.isatty(),
        ) as bar:
            task = bar.add_task("embedding files", total=None)

            def progress(stage: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=max(total, 1))

            report = asst.ingest(targets, rebuild=rebuild, progress=progress, wait=not no_wait, on_warning=_warn,
                                 on_run_open=start_workers if workers > 1 else None)
    except AssistantError as e:
        _stop_workers(children)
        _notices(asst)
        _fail(str(e))
        return
    except BaseException:
        _stop_workers(children)
        raise
    for n, code in enumerate(_wait_workers(children), 1):
        if code:
            typer.echo(f"warning: worker {n} of {workers} exited with status {code}; the others did its files",
                       err=True)
    _notices(asst)
    if worker:
        return
    typer.echo(
        f"indexed into {terminal_text(asst.location)}: {report.added} added, {report.changed} changed, "
        f"{report.removed} removed, {report.unchanged} unchanged; {report.embedded} chunks and "
        f"{report.sentences_embedded} sentences embedded, {report.chunks} chunks in the index"
    )
    if report.chunks == 0:
        _fail("no documents could be indexed", code=1)


def _start_workers(n: int, targets: list[str], asst: Any, embedder: Optional[str], threads: Optional[int]
                   ) -> list[subprocess.Popen]:
    """``n`` more ``assistant ingest`` processes over the same sources and store: they join this run."""
    from .settings import child_environment

    cmd = [sys.executable, "-m", "assistant", "ingest", *targets, "--worker"]
    if embedder:
        cmd += ["--embedder", embedder]
    # the location in the environment, not on the command line: it may hold a password
    env = child_environment(store=getattr(asst.store, "url", asst.location), index_dir=None,
                            threads=threads or None)
    return [subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL) for _ in range(n)]


def _wait_workers(children: list[subprocess.Popen]) -> list[int]:
    return [p.wait() for p in children]


def _stop_workers(children: list[subprocess.Popen]) -> None:
    for p in children:
        if p.poll() is None:
            p.terminate()
    for p in children:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


BackendOpt = typer.Option(
    None, "--backend", help="Answer backend: extractive (default), or KIND:MODEL such as openai:MODEL "
    "(`assistant backends` lists them; default: $ASSISTANT_BACKEND)."
)
BaseUrlOpt = typer.Option(
    None, "--base-url", help="Server of an openai:/ollama: backend, e.g. http://127.0.0.1:8080/v1 (default: "
    "$ASSISTANT_BASE_URL; the key is $OPENAI_API_KEY, optional for local servers)."
)


@app.command()
def ask(
    question: str = typer.Argument(..., help="The question, in Arabic or English."),
    index: Optional[Path] = IndexOpt,
    store: Optional[str] = StoreOpt,
    k: int = typer.Option(5, "-k", "--k", min=1, max=50, help="Passages to retrieve."),
    as_json: bool = typer.Option(False, "--json", help="Print the answer as JSON."),
    backend: Optional[str] = BackendOpt,
    base_url: Optional[str] = BaseUrlOpt,
    no_stream: bool = typer.Option(False, "--no-stream", help="Print a generated answer once verified, not token by "
                                   "token."),
    embedder: Optional[str] = EmbedderOpt,
    threads: Optional[int] = ThreadsOpt,
) -> None:
    """Answer a question from the indexed documents, with numbered sources."""
    settings = _settings(index, embedder, threads, store=store, backend=backend, base_url=base_url)
    default_index = index is None and store is None
    streamed = ""
    asst = None
    try:
        asst = _assistant(settings, default_sources=default_index)
        if as_json or no_stream:
            a = asst.answer(question, k=k)
        else:
            a = None
            for item in asst.stream(question, k=k):
                if isinstance(item, str):
                    streamed += item
                    typer.echo(terminal_text(item, lines=True), nl=False)
                    sys.stdout.flush()
                else:
                    a = item
            assert a is not None
    except AssistantError as e:
        if streamed:
            typer.echo("")
        _notices(asst)
        _fail(str(e))
        return
    _notices(asst)
    if as_json:
        typer.echo(terminal_json(a.to_dict(), indent=2))
        return
    ar = a.language == "ar"
    if streamed:
        typer.echo("")
        if streamed.strip() != a.text.strip():
            # what was streamed is the model's draft; this is what survived verification (or the fallback)
            fallback = a.backend.endswith("(fallback)")
            if ar:
                head = "الإجابة الاستخراجية:" if fallback else "الإجابة بعد التحقق من الاستشهادات:"
            else:
                head = "Extractive answer:" if fallback else "Verified answer:"
            typer.echo("")
            typer.echo(head)
            typer.echo(terminal_text(a.text, lines=True))
    else:
        typer.echo(terminal_text(a.text, lines=True))
    if a.notice:
        typer.echo(f"note: {terminal_text(a.notice)}", err=True)
    if a.citations:
        typer.echo("")
        typer.echo("المصادر:" if ar else "Sources:")
        for c in a.citations:
            snippet = " ".join(terminal_text(c.text).split())
            if len(snippet) > 240:
                snippet = snippet[:237] + "..."
            typer.echo(f"[{c.n}] {terminal_text(c.doc)} (chars {c.start}-{c.end}, score {c.score:.3f})")
            typer.echo(f"    {snippet}")
    if a.dropped_citations:
        typer.echo("")
        typer.echo("حُذف (لم تدعمه المقاطع):" if ar else "Dropped (not supported by the passages):")
        for d in a.dropped_citations:
            claim = " ".join(terminal_text(d.get("claim", "")).split())
            if len(claim) > 160:
                claim = claim[:157] + "..."
            where = f" -> {terminal_text(d['doc'])}" if d.get("doc") else ""
            typer.echo(terminal_text(f"{d.get('marker') or '(no marker)'}{where}: {d.get('reason')}"))
            typer.echo(f"    {claim}")


@app.command()
def status(index: Optional[Path] = IndexOpt, store: Optional[str] = StoreOpt,
           embedder: Optional[str] = EmbedderOpt) -> None:
    """Show what the index holds."""
    settings = _settings(index, embedder, None, store=store)
    asst = None
    try:
        asst = _assistant(settings, default_sources=False)
        st = asst.status()
    except AssistantError as e:
        _notices(asst)
        _fail(str(e))
        return
    _notices(asst)
    typer.echo(f"index:     {terminal_text(st['store'])}")
    typer.echo(f"embedder:  {terminal_text(st['embedder']['name'])} (dim {terminal_text(st['embedder']['dim'])})")
    typer.echo(f"documents: {st['documents']}")
    typer.echo(f"chunks:    {st['chunks']}")
    if st["sentence_vectors"] is not None:
        typer.echo(f"sentences: {st['sentence_vectors']} vectors")
    else:
        typer.echo("sentences: no vectors stored (answers embed sentences when asked; `assistant ingest` adds them)")
    for f in st["files"]:
        typer.echo(f"  {terminal_text(f['doc'])}  [{terminal_text(f['language'])}]  {f['n_chunks']} chunks")


@app.command()
def backends() -> None:
    """List the answer backends (what --backend and ASSISTANT_BACKEND accept)."""
    from .answering import backend_kinds

    for kind in backend_kinds():
        extra = f"  [pip install 'assistant[{kind.extra}]']" if kind.extra else ""
        typer.echo(f"{kind.example or kind.name:<22} {kind.summary}{extra}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (default: this machine only). Any "
                             "other address needs users (`assistant users add`) or --no-auth."),
    port: int = typer.Option(7860, "--port", min=1, max=65535, help="Port to listen on."),
    index: Optional[Path] = IndexOpt,
    store: Optional[str] = StoreOpt,
    uploads: Optional[Path] = typer.Option(
        None, "--uploads", help="Folder for documents uploaded in the page (default: uploads/ beside the index)."
    ),
    no_auth: bool = typer.Option(False, "--no-auth", help="Serve on an address other than this machine's without "
                                 "sign-in when the collection has no users: anyone who can reach it may upload, "
                                 "delete and ask."),
    embedder: Optional[str] = EmbedderOpt,
    threads: Optional[int] = ThreadsOpt,
) -> None:
    """Start the web chat (streamed cited answers, sources, document upload) over the same index. Signing in is
    required whenever the collection has users."""
    settings = _settings(index, embedder, threads, store=store, web_uploads_dir=uploads)
    try:
        from .store import open_store
        from .web.auth import sign_in_policy

        users = open_store(settings.location, settings.store).users().list()
        sign_in, warning = sign_in_policy(host, len(users), no_auth)
    except ImportError as e:
        _fail(f"the web app needs gradio ({e}); install it with `pip install gradio`")
        return
    except AssistantError as e:
        _fail(str(e))
        return
    try:
        from .web import serve as serve_web
    except ImportError as e:
        _fail(f"the web app needs gradio ({e}); install it with `pip install gradio`")
        return
    if warning:
        _warn(warning)
    who = f"sign-in required, {len(users)} user{'s' if len(users) != 1 else ''}" if sign_in else "no sign-in"
    typer.echo(f"serving on http://{host}:{port} ({who}; Ctrl+C to stop)", err=True)
    try:
        serve_web(settings, host=host, port=port, default_sources=index is None and store is None,
                  sign_in=sign_in)
    except AssistantError as e:
        _fail(str(e))


users_app = typer.Typer(
    no_args_is_help=True, help="The people who may sign in to the web app (kept with the collection: users.json "
    "beside a folder index, a table in a database).")
app.add_typer(users_app, name="users")


def _users(index: Optional[Path], store: Optional[str]):
    from .store import open_store

    settings = _settings(index, None, None, store=store)
    try:
        return settings, open_store(settings.location, settings.store).users()
    except AssistantError as e:
        _fail(str(e))
        raise  # unreachable


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="The name to sign in with."),
    admin: bool = typer.Option(False, "--admin", help="May upload, re-index and delete documents and choose the "
                               "answer backend (readers only ask)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from the first line of "
                                        "stdin instead of asking twice without echo."),
    index: Optional[Path] = IndexOpt,
    store: Optional[str] = StoreOpt,
) -> None:
    """Add a user (or give an existing one a new password and role)."""
    import time

    from .store import UserRecord
    from .web.auth import Passwords, check_password, check_user_name

    settings, users = _users(index, store)
    try:
        check_user_name(name)
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        check_password(password, settings.auth)
        existing = users.get(name)
        record = UserRecord(name, Passwords(settings.auth).hash(password), admin,
                            existing.created if existing else time.time())
        users.put(record)
    except AssistantError as e:
        _fail(str(e))
        return
    except (typer.Abort, EOFError):
        _fail("no password given")
        return
    role = "admin" if admin else "reader"
    typer.echo(f"{'updated' if existing else 'added'} {role} {name}")


@users_app.command("list")
def users_list(index: Optional[Path] = IndexOpt, store: Optional[str] = StoreOpt) -> None:
    """List the users and their roles."""
    import time

    _settings_, users = _users(index, store)
    try:
        records = users.list()
    except AssistantError as e:
        _fail(str(e))
        return
    if not records:
        typer.echo("no users: the web app runs without sign-in on this machine only (see `assistant users add`)")
    for u in records:
        created = time.strftime("%Y-%m-%d", time.localtime(u.created)) if u.created else "-"
        typer.echo(f"{terminal_text(u.name):<24} {'admin' if u.admin else 'reader':<7} added {created}")


@users_app.command("remove")
def users_remove(name: str = typer.Argument(..., help="The user to remove."),
                 index: Optional[Path] = IndexOpt, store: Optional[str] = StoreOpt) -> None:
    """Remove a user (their open sessions in the web app stop working at their next request)."""
    _settings_, users = _users(index, store)
    try:
        found = users.remove(name)
    except AssistantError as e:
        _fail(str(e))
        return
    if not found:
        _fail(f"no user named {name!r}")
    typer.echo(f"removed {terminal_text(name)}")


@app.command("eval")
def eval_(
    questions: Optional[Path] = typer.Argument(
        None, help="Questions in the seed format (JSONL; default: eval/seed_questions.jsonl)."),
    dataset: Optional[Path] = typer.Option(
        None, "--dataset", help="A collection in the XQuAD layout (documents.jsonl, questions*.jsonl) instead: each "
        "document language is indexed on its own and asked the questions about it."),
    index: Optional[Path] = typer.Option(
        None, "--index", help="The index to ask (default: the seed collection). With --dataset: the folder for the "
        "per-language indexes DIR/<lang> (default: a cache folder, reused and updated incrementally)."),
    store: Optional[str] = StoreOpt,
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: eval_out/<name>-<timestamp>)."),
    k: Optional[int] = typer.Option(None, "-k", "--k", help="Passages given to each answer (default: the k "
                                    "setting, 5); retrieval metrics always use the top 10."),
    pairs: Optional[str] = typer.Option(None, "--pairs", help="Question-document language pairs to run, e.g. "
                                        "ar-ar,en-en,en-ar,ar-en (default: all)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="A fixed, seeded sample of N questions per pair."),
    split: Optional[str] = typer.Option(None, "--split", help="With --dataset: only the articles of this half of "
                                        "the recorded split (eval/xquad_split.json: train, test)."),
    backend: Optional[str] = BackendOpt,
    base_url: Optional[str] = BaseUrlOpt,
    embedder: Optional[str] = EmbedderOpt,
    threads: Optional[int] = ThreadsOpt,
) -> None:
    """Evaluate on a fixed question set: retrieval, answer, citation and refusal metrics per language pair."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from .evaluation import default_out_dir, metric_rows, run_evaluation, write_outputs
    from .evaluation.report import fmt

    try:
        with Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), transient=True, console=Console(stderr=True), disable=not sys.stderr.isatty(),
        ) as bar:
            tasks: dict = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    if total == 0:  # nothing to embed
                        return
                    tasks[stage] = bar.add_task(stage, total=max(total, 1))
                bar.update(tasks[stage], completed=done, total=max(total, 1))

            # --backend / --base-url: compare generative and extractive answers on the same questions
            eval_settings = (_settings(None, None, None, backend=backend, base_url=base_url)
                             if backend is not None or base_url is not None else None)
            run = run_evaluation(
                questions, dataset=dataset, index=store if store is not None else index, k=k, pairs=pairs,
                limit=limit, split=split, threads=threads, embedder=embedder, progress=progress,
                settings=eval_settings,
                command=cli_command(questions, dataset=dataset, index=index, store=store, out=out, k=k, pairs=pairs,
                                    limit=limit, split=split, backend=backend, **{"base-url": base_url},
                                    embedder=embedder, threads=threads),
                on_warning=_warn,
            )
        target = out if out is not None else default_out_dir(run.report["meta"]["name"])
        write_outputs(run, target)
    except AssistantError as e:
        _fail(str(e))
        return
    except OSError as e:
        _fail(f"cannot write the report: {e.strerror or e}: {getattr(e, 'filename', '') or ''}".rstrip(": "))
        return
    meta = run.report["meta"]
    cols, rows = metric_rows(run.report)
    table = Table(title=f"{meta['name']}: {meta['sample']}, k={meta['k']}, {meta['wall_s']} s")
    table.add_column("metric")
    for c in cols:
        table.add_column(c, justify="right")
    for m, vals in rows:
        table.add_row(m, *vals)
    console = Console(highlight=False)
    console.print(table)
    paths = run.report.get("by_path") or {}
    if len(paths) > 1 or any(p not in ("extractive", "refusal") for p in paths):
        console.print("answered by path: " + ", ".join(
            f"{name} {g['n']} (accuracy {fmt(g['answer_accuracy'])})" for name, g in paths.items()))
    console.print(f"{meta['failures']} failed question(s) listed in {target / 'failures.jsonl'} and report.md")
    console.print(f"report: {target / 'report.json'}, {target / 'report.md'}, {target / 'pairs.png'}")


def cli_command(questions: Any = None, **options: Any) -> str:
    """The ``assistant eval`` command line that reproduces a run: the questions file and the options given."""
    words = ["assistant", "eval"] + ([str(questions)] if questions is not None else [])
    for key, value in options.items():
        if value is not None:
            text = str(value)
            if key == "store":  # a database URL's password stays out of the report
                text = re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*):[^@/]*@", r"\1@", text)
            words += [f"--{key}", text]
    return " ".join(shlex.quote(w) for w in words)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
