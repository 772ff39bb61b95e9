"""The words of `charrnn --help` that are not a flag's own: examples per command and the exit codes.

Click rewraps help paragraphs; a paragraph that starts with a line holding only \\b is kept as written.
"""

EXIT_CODES = {
    0: "success (also when the reader of stdout went away, as with `| head`)",
    1: "a file, corpus or checkpoint that cannot be used, or training that diverged",
    2: "a bad flag, flag value or combination of flags",
    130: "interrupted by Ctrl-C (SIGINT); training saves its state first",
    143: "stopped by SIGTERM; training saves its state first",
}


def _block(title, lines):
    return "\b\n" + title + "\n" + "\n".join("  " + line for line in lines)


def examples(*lines):
    """An epilog of examples, kept line for line."""
    return _block("Examples:", lines)


MAIN = _block("Exit codes:", [f"{code:<4} {meaning}" for code, meaning in EXIT_CODES.items()]) + "\n\n" + examples(
    "charrnn train corpus.txt",
    "charrnn sample --prime 'ROMEO:' --temperature 0.8",
)

VOCAB = examples("charrnn vocab corpus.txt", "cat *.txt | charrnn vocab - --json")
TRAIN = examples(
    "charrnn train corpus.txt --cell lstm --layers 2 --time 600",
    "charrnn train --resume charrnn.npz --epochs 5",
)
SAMPLE = examples(
    "charrnn sample --prime 'ROMEO:' -t 0.8 -l 300",
    "charrnn sample -m names.npz -n 10 --seed 1",
)
EVAL = examples("charrnn eval test.txt", "charrnn eval -m charrnn.best.npz test.txt --json")
INFO = examples("charrnn info charrnn.npz", "charrnn info --devices")
PLOT = examples("charrnn plot charrnn.npz", "charrnn plot a.npz b.jsonl --x seconds --output runs.png")
CORPUS = examples("charrnn corpus list", "charrnn train \"$(charrnn corpus get tinyshakespeare)\" --time 600")
CORPUS_LIST = examples("charrnn corpus list", "charrnn corpus list --json")
CORPUS_GET = examples(
    "charrnn corpus get tinyshakespeare",
    "CHARRNN_CORPUS_MIRROR=http://127.0.0.1:8000 charrnn corpus get tinyshakespeare",
)
