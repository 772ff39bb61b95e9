"""What the commands print on stdout: vocabulary tables, evaluation results, checkpoint details."""

import errno
import json
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text


def plain(*values):
    """Table cells shown as they are: a '[' in a path or a vocabulary is text, not rich markup."""
    return [Text(str(value)) for value in values]


def to_json(data):
    return json.dumps(data, ensure_ascii=False, indent=2)


class StdoutConsole(Console):
    def on_broken_pipe(self):
        # rich would exit 1 here; let the CLI stop quietly (exit 0) as it does for every command
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def stdout_console():
    return StdoutConsole(file=sys.stdout, highlight=False)


def vocab_rows(vocab):
    total = max(int(vocab.counts.sum()), 1) if vocab.counts is not None else 1
    for i, token in enumerate(vocab.tokens):
        count = int(vocab.counts[i]) if vocab.counts is not None else None
        share = count / total if count is not None else None
        yield i, token, count, share


def vocab_json(vocab):
    tokens = [
        {"id": i, "token": token, "display": vocab.display(i), "count": count, "share": share}
        for i, token, count, share in vocab_rows(vocab)
    ]
    return to_json({"size": vocab.size, "unk_id": 0, "eos_id": 1, "tokens": tokens})


def print_vocab_table(vocab):
    table = Table(title=f"{vocab.size} tokens")
    for name in ("id", "char", "count", "share"):
        table.add_column(name, justify="left" if name == "char" else "right")
    for i, _, count, share in vocab_rows(vocab):
        table.add_row(*plain(i, vocab.display(i), f"{count:,}", f"{share:.2%}"))
    stdout_console().print(table)


def eval_json(result):
    return to_json(result.as_dict())


def eval_line(result):
    return (
        f"loss {result.loss:.4f} nats/char  bpc {result.bpc:.4f}  "
        f"perplexity {result.perplexity:.3f}  ({result.chars:,} chars)"
    )


def print_info(details):
    console = stdout_console()
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    best = details["best_val_loss"]
    rows = [
        ("checkpoint", details["path"]),
        ("model", f"{details['cell']}, {details['layers']} layer{'s' if details['layers'] > 1 else ''} of "
                  f"{details['hidden']} hidden units, {details['vocab_size']} tokens"
                  + (f", dropout {details['dropout']}" if details["dropout"] else "")),
        ("parameters", f"{details['parameters']:,}"),
        ("records", "one per line" if details["lines"] else "one per file"),
        ("steps trained", f"{details['steps']:,}" if details["steps"] is not None else "?"),
        *([("trained on", str(details["device"]))] if details.get("device") is not None else []),
        ("best val loss", f"{best:.4f} nats/char" if best is not None else "-"),
        ("corpus", details["corpus"].get("fingerprint", "?")),
    ]
    rows += [(f"train.{k}", str(v)) for k, v in details["train"].items()]
    rows.append(("vocabulary", " ".join(details["vocab"])))
    for key, value in rows:
        table.add_row(*plain(key, value))
    console.print(table)


def print_devices(found):
    """`charrnn info --devices`: one row per finding (see charrnn.device.describe_devices)."""
    from charrnn.device import device_lines

    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in device_lines(found):
        table.add_row(*plain(key, value))
    stdout_console().print(table)
