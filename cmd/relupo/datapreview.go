package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/tokenizer"
	"github.com/relupo/relupo/train"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// previewKeys are the training options that decide what data preview shows.
var previewKeys = tokenKeys

func newDataPreviewCmd() *cobra.Command {
	o := train.DefaultOptions()
	var n int
	var color, config string
	cmd := &cobra.Command{
		Use:   "preview --model DIR --data FILE [-n 3]",
		Short: "Show the first pairs as training sees them, with the label tokens marked",
		Long: `Shows the first -n pairs of --data exactly as 'relupo train' tokenizes them (the
model's chat template and tokenizer, the same --data-format, --chat-template,
--completion-only-assistant-content and truncation options). For each pair it prints

  - the rendered prompt text and each response text (the text the tokenizer sees:
    the response includes what the template writes around the assistant's
    message, such as the end-of-turn marker);
  - the chosen and the rejected token sequence, one token at a time: prompt tokens
    in brackets, [<s>][▁[INST]], then the label tokens (the tokens whose
    log-probs training scores) between bars, |▁Hello|▁world|</s>|;
  - the number of prompt tokens and of chosen and rejected labels after
    truncation, and what truncation cut.

Tokens are shown as the tokenizer's vocabulary spells them (Llama's ▁ is a space,
GPT-2's Ġ a space and Ċ a newline), with control characters escaped. Pre-tokenized
data is shown through the folder's tokenizer when it has one, else as ids.

On a terminal, prompt tokens are dim and labels coloured (chosen green, rejected
red); --color always or never overrides that. Records the reader skips are listed
where they occur. --data may list several files; they are read in order and their
fractions ignored. A pair that training could not use is shown with its error,
and the command then exits with status 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyConfig(cmd, &o, config, false); err != nil {
				return err
			}
			if o.Model == "" {
				return usagef("data preview: --model is required")
			}
			if len(o.Data) == 0 {
				return usagef("data preview: --data is required")
			}
			if n < 1 {
				return usagef("data preview: -n must be at least 1")
			}
			dc, err := o.DataConfig()
			if err != nil {
				return usagef("data preview: %v", err)
			}
			out := cmd.OutOrStdout()
			var st style
			switch color {
			case "always":
				st = ansiStyle
			case "never":
			case "auto":
				if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					st = ansiStyle
				}
			default:
				return usagef("data preview: --color must be auto, always or never, not %q", color)
			}
			return runPreview(o.Model, dc, n, st, out)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&n, "pairs", "n", 3, "number of pairs to show")
	f.StringVar(&color, "color", "auto", "colour the tokens: auto (on a terminal), always or never")
	f.StringVar(&config, "config", "", configHelp)
	bindFlags(&o, f, previewKeys...)
	return cmd
}

// style holds the escape sequences around the parts of a token sequence;
// the zero style is plain text.
type style struct {
	prompt, chosen, rejected, note, reset string
}

// ansiStyle colours a terminal: dim prompt tokens, green chosen and red
// rejected labels.
var ansiStyle = style{prompt: "\x1b[2m", chosen: "\x1b[32m", rejected: "\x1b[31m", note: "\x1b[1m", reset: "\x1b[0m"}

// previewer prints pairs as training sees them.
type previewer struct {
	trunc data.Truncation
	lim   data.Limits
	enc   *data.Encoder        // nil without tokenizer.json
	tok   *tokenizer.Tokenizer // nil without tokenizer.json
	st    style
	w     io.Writer
}

// runPreview shows the first n pairs of dc's training files, read with
// the tokenizer of modelDir (or dc.Tokenizer). It returns an error when a file cannot be
// read, or after the preview when a pair shown could not be trained on.
func runPreview(modelDir string, dc train.DataConfig, n int, st style, w io.Writer) error {
	srcs := dc.Train
	for _, src := range srcs {
		if _, err := os.Stat(src.Path); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("data: %s: no such file", src.Path)
		}
	}
	p := &previewer{trunc: dc.Truncation, st: st, w: w}
	if _, err := os.Stat(filepath.Join(modelDir, "config.json")); err == nil { // without config.json, ids are not checked against a vocabulary
		cfg, err := model.LoadConfig(modelDir)
		if err != nil {
			return err
		}
		p.lim = data.Limits{VocabSize: cfg.VocabSize} // any length: sliding windows are attended, not a limit
	}
	var err error
	tokDir := dc.TokenizerDir(modelDir)
	if p.enc, err = (data.LoadConfig{Tokenizer: tokDir, Encode: dc.Encode}).NewEncoder(); err != nil {
		return err
	}
	if p.enc != nil {
		if p.tok, err = tokenizer.Load(tokDir); err != nil {
			return err
		}
	}
	shown, bad := 0, 0
	for _, src := range srcs {
		if shown == n {
			break
		}
		r, err := data.Open(src.Path, data.Options{Format: dc.Format, OnSkip: func(err error) {
			fmt.Fprintf(w, "%sskipped%s %v\n\n", st.note, st.reset, err)
		}})
		if err != nil {
			return err
		}
		for shown < n {
			pair, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				r.Close()
				return err
			}
			shown++
			if !p.show(shown, pair) {
				bad++
			}
		}
		r.Close()
	}
	if shown == 0 {
		return fmt.Errorf("data preview: %s holds no pairs", sourceList(srcs))
	}
	if bad > 0 {
		return fmt.Errorf("data preview: training cannot use %d of the %d pairs shown (see above)", bad, shown)
	}
	return nil
}

// show prints one pair and reports whether training can use it.
func (p *previewer) show(i int, pair data.Pair) bool {
	st, w := p.st, p.w
	fmt.Fprintf(w, "%s── pair %d · %s ──%s\n", st.note, i, pair.Source, st.reset)
	ok := true
	if !pair.Tokenized && p.enc != nil {
		prompt, chosen, rejected, err := p.enc.Texts(pair)
		if err != nil {
			fmt.Fprintf(w, "error: %v\n\n", err)
			return false
		}
		p.text("prompt text", prompt)
		p.text("chosen text", chosen)
		p.text("rejected text", rejected)
	}
	e, err := p.enc.Example(pair)
	if err != nil {
		fmt.Fprintf(w, "error: %v\n\n", err)
		return false
	}
	full := e
	p.trunc.Apply(&e)
	if pair.Tokenized && p.tok != nil {
		p.text("prompt (decoded)", p.tok.Decode(toInts(full.Prompt), false))
		p.text("chosen (decoded)", p.decodeAfter(full.Prompt, full.Chosen))
		p.text("rejected (decoded)", p.decodeAfter(full.Prompt, full.Rejected))
	}
	fmt.Fprintf(w, "chosen tokens:\n  %s\n", p.tokens(e.Prompt, e.Chosen, st.chosen))
	fmt.Fprintf(w, "rejected tokens:\n  %s\n", p.tokens(e.Prompt, e.Rejected, st.rejected))
	fmt.Fprintf(w, "prompt tokens %d, chosen labels %d, rejected labels %d; truncation: %s\n",
		len(e.Prompt), data.Labels(e.Prompt, e.Chosen), data.Labels(e.Prompt, e.Rejected), describeCut(full, e, p.trunc))
	if err := e.Check(p.lim); err != nil {
		fmt.Fprintf(w, "error: %v\n", err)
		ok = false
	}
	fmt.Fprintln(w)
	return ok
}

// text prints a labelled text block, each line indented and set off by a
// bar so that leading and trailing white space stays visible.
func (p *previewer) text(label, s string) {
	fmt.Fprintf(p.w, "%s:\n", label)
	for line := range strings.SplitSeq(s, "\n") {
		fmt.Fprintf(p.w, "  │%s\n", line)
	}
}

// decodeAfter decodes a response as it reads after the prompt: decoders
// such as Llama's strip the first space of a text, which is part of the
// response when it follows a prompt.
func (p *previewer) decodeAfter(prompt, response []int32) string {
	before := p.tok.Decode(toInts(prompt), false)
	all := p.tok.Decode(toInts(append(append([]int32(nil), prompt...), response...)), false)
	if rest, ok := strings.CutPrefix(all, before); ok {
		return rest
	}
	return p.tok.Decode(toInts(response), false)
}

// tokens renders a training sequence: each prompt token in brackets, then
// each response token followed by a bar. When the prompt is empty the first
// response token is context, not a label, and is bracketed too.
func (p *previewer) tokens(prompt, response []int32, color string) string {
	var b strings.Builder
	ctx := len(prompt)
	if ctx == 0 && len(response) > 0 {
		ctx = 1
	}
	seq := append(append([]int32(nil), prompt...), response...)
	if ctx > 0 {
		b.WriteString(p.st.prompt)
		for _, id := range seq[:ctx] {
			b.WriteString("[" + p.token(id) + "]")
		}
		b.WriteString(p.st.reset)
	}
	b.WriteString("|")
	for _, id := range seq[ctx:] {
		b.WriteString(color + p.token(id) + p.st.reset + "|")
	}
	return b.String()
}

// token spells one id: the vocabulary's token with control characters
// escaped, or #id when there is no tokenizer or the id is not in it.
func (p *previewer) token(id int32) string {
	if p.tok != nil {
		if s, ok := p.tok.Token(int(id)); ok {
			return escapeControls(s)
		}
	}
	return "#" + strconv.Itoa(int(id))
}

// escapeControls writes control characters as Go escapes, so that one
// token stays on one line.
func escapeControls(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 }

// describeCut says what truncation removed from full to give cut.
func describeCut(full, cut data.Example, o data.Truncation) string {
	var parts []string
	if d := len(full.Prompt) - len(cut.Prompt); d > 0 {
		where := "start"
		if o.Mode == "keep_start" {
			where = "end"
		}
		parts = append(parts, fmt.Sprintf("prompt cut from %d to %d tokens (%d removed from its %s)", len(full.Prompt), len(cut.Prompt), d, where))
	}
	if len(cut.Chosen) < len(full.Chosen) || len(cut.Rejected) < len(full.Rejected) {
		parts = append(parts, fmt.Sprintf("responses cut to their first %d tokens (chosen had %d, rejected %d)", max(len(cut.Chosen), len(cut.Rejected)), len(full.Chosen), len(full.Rejected)))
	}
	if len(parts) == 0 {
		if o.MaxLength <= 0 {
			return "off"
		}
		return fmt.Sprintf("nothing cut (max length %d, max prompt length %d)", o.MaxLength, o.MaxPromptLength)
	}
	return strings.Join(parts, "; ")
}

func toInts(ids []int32) []int {
	out := make([]int, len(ids))
	for i, id := range ids {
		out[i] = int(id)
	}
	return out
}

// sourceList names the files of a mixture.
func sourceList(srcs []data.Source) string {
	names := make([]string, len(srcs))
	for i, s := range srcs {
		names[i] = s.String()
	}
	return strings.Join(names, ",")
}
