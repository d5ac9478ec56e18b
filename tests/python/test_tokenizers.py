"""`tessera tokenize` against the reference libraries, token for token.

Small tokenizers are trained here on a generated corpus with the real
settings: GPT-2 (ByteLevel pre-tokenizer, <|endoftext|>; tokenizer.json and
vocab.json + merges.txt), Llama-3 (its Split regex + ByteLevel, ignore_merges,
<|begin_of_text|> added by TemplateProcessing) with Hugging Face `tokenizers`,
and Llama-2 (SentencePiece BPE, byte_fallback, identity normalizer, dummy
prefix, split digits) plus a Unigram model with `sentencepiece`. Each is then
run over a few thousand strings — many scripts, whitespace runs, tabs and
newlines, emoji with ZWJ sequences, code, numbers, contractions, random
code points — and ids, decoded text and round trips are compared.
"""
import json
import random

import pytest

tokenizers = pytest.importorskip("tokenizers")
spm = pytest.importorskip("sentencepiece")
from tokenizers import Regex, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
                  r"""\s*[\r\n]+|\s+(?!\S)|\s+""")
LLAMA3_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]

FRAGMENTS = [
    "Hello", "world", "the quick brown fox", "jumps over", "lazy dog", "don't", "I'M", "we'll", "they've", "she'd",
    "it's", "You're", "Привет мир", "Καλημέρα", "مرحبا بالعالم", "שלום", "नमस्ते दुनिया", "你好，世界", "日本語のテキスト",
    "カタカナ", "한국어 문장", "สวัสดีครับ", "Ελληνικά", "Ünïcödé", "naïve café", "straße", "ﬁ ligature", "ǅ", "İstanbul",
    "👨‍👩‍👧‍👦", "🏳️‍🌈", "👍🏽", "🇯🇵🇺🇸", "😀😃😄", "❤️", "🧑🏿‍💻", "def f(x):\n    return x**2  # square",
    "if (a && b) { c++; }", "for i in range(10):", "<div class=\"x\">", "SELECT * FROM t;", "x = [1, 2, 3]",
    "12345678", "3.14159", "1,000,000", "2024-01-31", "0x1F", "$100", "99%", "   ", "\t\t", "\n\n", "\r\n", " \n ",
    "\u00a0", "\u3000", "\u2003", "  \t \n", "\u0085", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c\x1f", "\u180e", "\u200b",
    "\ufeff", "\u202f", "ſ", "'S 'ſ 'LL", "Kelvin \u212a", "\u0130I\u0131", "x\u0301\u0302", "   \n\n  \t", "...", "!!!", "?!", "---", "«quoted»", "“smart”", "’", "'", "\"",
]
SEPARATORS = [" ", "", "\n", "\t", "  ", ", ", " \n"]


def random_codepoints(rng, n):
    out = []
    for _ in range(n):
        cp = rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0x2FF), rng.randint(0x370, 0x1FFF),
                         rng.randint(0x3000, 0x9FFF), rng.randint(0xAC00, 0xD7A3), rng.randint(0x1F300, 0x1FAFF)])
        out.append(chr(cp))
    return "".join(out)


def make_strings(seed, count, random_text=True):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        kind = rng.random() if random_text else 1.0
        if kind < 0.1:
            out.append(random_codepoints(rng, rng.randint(1, 20)))
        elif kind < 0.15:
            out.append(bytes(rng.randrange(1, 256) for _ in range(rng.randint(1, 16))).decode("latin-1"))
        else:
            parts = [rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 8))]
            out.append("".join(p + rng.choice(SEPARATORS) for p in parts).rstrip(" ") if rng.random() < 0.5
                       else rng.choice(SEPARATORS).join(parts))
    return out


CORPUS = make_strings(1, 4000)
CORPUS_SP = [s for s in make_strings(3, 4000, random_text=False) if "\n" not in s]  # one sentence a line
TESTS = [""] + make_strings(2, 3000)


def hf_byte_level(tmp_path, name, pre_tokenizer, special, llama3):
    tok = tokenizers.Tokenizer(models.BPE(ignore_merges=llama3))
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    bos = tok.token_to_id(special[0])
    if llama3:
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single=f"{special[0]} $A", pair=f"{special[0]} $A {special[0]} $B",
                                          special_tokens=[(special[0], bos)])])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    path = tmp_path / name
    path.mkdir()
    tok.save(str(path / "tokenizer.json"))
    return tok, path


def hf_decode(tok):
    return lambda ids: tok.decode(ids, skip_special_tokens=False)


def run_lines(tessera, tokenizer, lines, *flags):
    """Run `tessera tokenize` on JSON lines; return the parsed output lines."""
    path = tokenizer.parent / f"input{len(flags)}.jsonl"
    path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in lines), encoding="utf-8")
    p = tessera("tokenize", "--tokenizer", tokenizer, "--input-file", path, *flags, timeout=120)
    assert p.returncode == 0, p.stderr
    out = [json.loads(line) for line in p.stdout.split("\n")[:-1]]  # not splitlines: U+2028 is text
    assert len(out) == len(lines)
    return out


def first_mismatch(got, want, strings):
    for s, g, w in zip(strings, got, want):
        if g != w:
            return f"{s!r}: tessera {g} vs reference {w}"
    return None


def check_against(tessera, tokenizer_path, strings, encode, decode, special_flags=((), ("--no-special",))):
    for flags, add_special in zip(special_flags, (True, False)):
        got = run_lines(tessera, tokenizer_path, strings, "--json-lines", *flags)
        want = [encode(s, add_special) for s in strings]
        assert got == want, first_mismatch(got, want, strings)
    decoded = run_lines(tessera, tokenizer_path, want, "--decode")  # the ids of the last pass: no BOS
    ref = [decode(ids) for ids in want]
    assert decoded == ref, first_mismatch(decoded, ref, want)
    return decoded


def test_gpt2_byte_level_bpe(tessera, tmp_path):
    special = ["<|endoftext|>"]
    tok, path = hf_byte_level(tmp_path, "gpt2", pre_tokenizers.ByteLevel(add_prefix_space=False), special, False)
    strings = TESTS + [s + "<|endoftext|>" + t for s, t in zip(TESTS[:200], TESTS[200:400])]
    decoded = check_against(tessera, path / "tokenizer.json", strings,
                            lambda s, a: tok.encode(s, add_special_tokens=a).ids, hf_decode(tok))
    assert decoded == strings
    # GPT-2's layout: vocab.json + merges.txt in a directory of their own.
    legacy = tmp_path / "gpt2_legacy"
    legacy.mkdir()
    tok.model.save(str(legacy))
    assert (legacy / "vocab.json").is_file() and (legacy / "merges.txt").is_file()
    check_against(tessera, legacy, strings[:1000], lambda s, a: tok.encode(s, add_special_tokens=a).ids, hf_decode(tok))
    p = tessera("tokenize", "--tokenizer", legacy, "--text", "Hello world<|endoftext|>")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == tok.encode("Hello world<|endoftext|>").ids


def test_llama3_byte_level_bpe(tessera, tmp_path):
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok, path = hf_byte_level(tmp_path, "llama3", pre, LLAMA3_SPECIAL, True)
    strings = TESTS + [f"<|start_header_id|>user<|end_header_id|>\n\n{s}<|eot_id|>" for s in TESTS[:300]]
    decoded = check_against(tessera, path / "tokenizer.json", strings,
                            lambda s, a: tok.encode(s, add_special_tokens=a).ids, hf_decode(tok))
    assert decoded == strings  # decoded from the ids without BOS
    p = tessera("tokenize", "--tokenizer", path, "--text", "hi", "--no-special")
    assert json.loads(p.stdout) == tok.encode("hi", add_special_tokens=False).ids


def train_sentencepiece(tmp_path, model_type):
    prefix = tmp_path / f"sp_{model_type}"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS_SP), model_prefix=str(prefix), vocab_size=1000,
        model_type=model_type, byte_fallback=True, normalization_rule_name="identity", add_dummy_prefix=True,
        remove_extra_whitespaces=False, split_digits=True, allow_whitespace_only_pieces=True,
        character_coverage=0.98, num_threads=2, minloglevel=2, hard_vocab_limit=False)
    return spm.SentencePieceProcessor(model_file=f"{prefix}.model"), prefix.with_suffix(".model")


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_sentencepiece(tessera, tmp_path, model_type):
    sp, path = train_sentencepiece(tmp_path, model_type)
    bos = sp.bos_id()
    decoded = check_against(tessera, path, TESTS, lambda s, a: ([bos] if a else []) + sp.encode(s), sp.decode)
    assert decoded == TESTS


def test_bad_inputs(tessera, tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"model": {"type": "WordPiece", "vocab": {}}}')
    p = tessera("tokenize", "--tokenizer", bad, "--text", "hi")
    assert p.returncode != 0 and p.stderr.startswith("tessera: error:") and "WordPiece" in p.stderr
    p = tessera("tokenize", "--tokenizer", tmp_path / "nothing.model", "--text", "hi")
    assert p.returncode != 0 and "nothing.model" in p.stderr
    (tmp_path / "cut.model").write_bytes(b"\x0a\x20\x0a\x05<unk>")
    p = tessera("tokenize", "--tokenizer", tmp_path / "cut.model", "--text", "hi")
    assert p.returncode != 0 and "truncated" in p.stderr


def test_cli_decode_bad_ids(tessera, tmp_path):
    sp, path = train_sentencepiece(tmp_path, "bpe")
    p = tessera("tokenize", "--tokenizer", path, "--decode", "--text", "[1, 2")
    assert p.returncode != 0 and "is not JSON" in p.stderr
    p = tessera("tokenize", "--tokenizer", path, "--decode", "--text", f"[{sp.vocab_size()}]")
    assert p.returncode != 0 and "outside the vocabulary" in p.stderr
    ids = sp.encode("Hello world")
    p = tessera("tokenize", "--tokenizer", path, "--decode", "--text", json.dumps(ids))
    assert p.returncode == 0 and json.loads(p.stdout) == "Hello world"
