package generate

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/relupo/relupo/chat"
)

// The output formats.
const (
	FormatJSONL      = "jsonl"
	FormatAlpacaEval = "alpaca_eval"
	FormatArenaHard  = "arena_hard"
)

// Meta is what the output formats record about the run.
type Meta struct {
	// Generator names the model: AlpacaEval's "generator", Arena-Hard's
	// "model_id" / "model".
	Generator string
	// Time stamps Arena-Hard answers ("tstamp"); the zero time means now.
	Time time.Time
	// CountTokens, when not nil, counts an Arena-Hard answer's token_len
	// (arena-hard-auto counts the answer with tiktoken's gpt-4o encoding;
	// give it that tokenizer to match). Nil counts the model's own
	// generated tokens.
	CountTokens func(answer string) (int, error)
}

// CheckFormat reports, before any generation, whether every record carries
// what the format needs: AlpacaEval needs an instruction, Arena-Hard a
// question_id or uid.
func CheckFormat(format string, recs []Record) error {
	switch format {
	case FormatJSONL:
	case FormatAlpacaEval:
		for _, r := range recs {
			if r.InputIDs != nil {
				return fmt.Errorf("%s: the alpaca_eval format needs an instruction; pre-tokenized prompts have none", r.Where)
			}
		}
	case FormatArenaHard:
		for _, r := range recs {
			if r.QuestionID == nil && r.UID == "" {
				return fmt.Errorf(`%s: the arena_hard format needs a "question_id" (Arena-Hard v0.1) or "uid" (current layout)`, r.Where)
			}
		}
	default:
		return fmt.Errorf("unknown format %q (jsonl, alpaca_eval or arena_hard)", format)
	}
	return nil
}

// JSONLRecord is one line of the jsonl format.
type JSONLRecord struct {
	OutputIDs    []int  `json:"output_ids"`
	Output       string `json:"output"`
	FinishReason string `json:"finish_reason"`
	// Instruction is the user's request for text prompts, so that the
	// judge can match answers across files.
	Instruction string `json:"instruction,omitempty"`
}

// AlpacaEvalRecord is one item of the JSON list AlpacaEval reads as model
// outputs (the layout of its reference outputs files).
type AlpacaEvalRecord struct {
	Instruction string `json:"instruction"`
	Output      string `json:"output"`
	Generator   string `json:"generator"`
	// Dataset is AlpacaEval's subset (helpful_base, koala, oasst,
	// selfinstruct, vicuna), copied from the input record; left out when
	// the input had none.
	Dataset string `json:"dataset,omitempty"`
}

// ArenaHardV01Answer is a line of an Arena-Hard v0.1 model_answer file, as
// its gen_answer.py writes it.
type ArenaHardV01Answer struct {
	QuestionID   json.RawMessage   `json:"question_id"`
	AnswerID     string            `json:"answer_id"`
	ModelID      string            `json:"model_id"`
	Choices      []ArenaHardChoice `json:"choices"`
	Tstamp       float64           `json:"tstamp"`
	ConvMetadata ArenaHardMeta     `json:"conv_metadata"`
}

// ArenaHardChoice is one sampled answer of a v0.1 record.
type ArenaHardChoice struct {
	Index int             `json:"index"`
	Turns []ArenaHardTurn `json:"turns"`
}

// ArenaHardTurn is one answered turn.
type ArenaHardTurn struct {
	Content  string `json:"content"`
	TokenLen int    `json:"token_len"`
}

// ArenaHardMeta is what Arena-Hard's style control reads of an answer
// (arena-hard-auto's utils/add_markdown_info.py writes it): its length in
// tokens and its Markdown headers, list items and bold spans, counted
// outside code blocks (see MarkdownCounts).
type ArenaHardMeta struct {
	TokenLen int `json:"token_len"`
	MarkdownCounts
}

// MarkdownCounts are the Markdown elements of an answer that Arena-Hard's
// style control weighs.
type MarkdownCounts struct {
	// HeaderCount counts the ATX headers of each level, h1 to h6.
	HeaderCount struct {
		H1 int `json:"h1"`
		H2 int `json:"h2"`
		H3 int `json:"h3"`
		H4 int `json:"h4"`
		H5 int `json:"h5"`
		H6 int `json:"h6"`
	} `json:"header_count"`
	// ListCount counts the ordered ("1. ") and unordered ("- ", "* ", "+ ")
	// list items.
	ListCount struct {
		Ordered   int `json:"ordered"`
		Unordered int `json:"unordered"`
	} `json:"list_count"`
	// BoldCount counts the **bold** and __bold__ spans.
	BoldCount struct {
		Stars       int `json:"**"`
		Underscores int `json:"__"`
	} `json:"bold_count"`
}

// pyS and pyD are Python's \s and \d on str patterns (Unicode white space
// and decimal digits), which arena-hard-auto's patterns use; Go's \s and \d
// are ASCII only.
const (
	pyS = `[\t\n\x{0B}\f\r \x{1C}-\x{1F}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]`
	pyD = `\p{Nd}`
)

// The patterns of arena-hard-auto's count_markdown_elements, and the code
// blocks whose content it removes first.
var (
	mdHeaders = func() [6]*regexp.Regexp {
		var re [6]*regexp.Regexp
		for i := range re {
			re[i] = regexp.MustCompile(fmt.Sprintf(`(?m)^#{%d}%s`, i+1, pyS))
		}
		return re
	}()
	mdOrdered     = regexp.MustCompile(`(?m)^` + pyS + `*` + pyD + `+\.` + pyS)
	mdUnordered   = regexp.MustCompile(`(?m)^` + pyS + `*[-*+]` + pyS)
	mdBoldStars   = regexp.MustCompile(`\*\*[^*\n]+\*\*`)
	mdBoldUnder   = regexp.MustCompile(`__[^_\n]+__`)
	mdCodeBlockIn = regexp.MustCompile("```([^`]*)```")
)

// CountMarkdown counts answer's Markdown elements as arena-hard-auto does:
// the text between each pair of ``` fences is first deleted (every
// occurrence of it, as its remove_pattern does with str.replace; the
// fences stay), then headers, list items and bold spans are counted with
// its regular expressions.
func CountMarkdown(answer string) MarkdownCounts {
	for _, m := range mdCodeBlockIn.FindAllStringSubmatch(answer, -1) {
		if m[1] != "" {
			answer = strings.ReplaceAll(answer, m[1], "")
		}
	}
	n := func(re *regexp.Regexp) int { return len(re.FindAllStringIndex(answer, -1)) }
	var c MarkdownCounts
	h := &c.HeaderCount
	for i, p := range []*int{&h.H1, &h.H2, &h.H3, &h.H4, &h.H5, &h.H6} {
		*p = n(mdHeaders[i])
	}
	c.ListCount.Ordered, c.ListCount.Unordered = n(mdOrdered), n(mdUnordered)
	c.BoldCount.Stars, c.BoldCount.Underscores = n(mdBoldStars), n(mdBoldUnder)
	return c
}

// ArenaHardAnswer is a line of a model_answer file in Arena-Hard's current
// layout (questions keyed by "uid"): the conversation with the assistant's
// content as {"answer": ...}.
type ArenaHardAnswer struct {
	UID      string             `json:"uid"`
	AnsID    string             `json:"ans_id"`
	Model    string             `json:"model"`
	Messages []ArenaHardMessage `json:"messages"`
	Tstamp   float64            `json:"tstamp"`
	Metadata ArenaHardMeta      `json:"metadata"`
}

// ArenaHardMessage is a message of an ArenaHardAnswer: the user's content
// is a string, the assistant's {"answer": ...}.
type ArenaHardMessage struct {
	Role    string `json:"role"`
	Content any    `json:"content"`
}

// Write writes the answers res to recs in the format: "jsonl" (one
// JSONLRecord per line), "alpaca_eval" (a JSON list of AlpacaEvalRecord) or
// "arena_hard" (one answer per line, in the layout of the input question:
// ArenaHardV01Answer for a question_id, ArenaHardAnswer for a uid).
//
// In the alpaca_eval and arena_hard formats the output text has leading
// and trailing white space removed, as the suites' own generation scripts
// do; Arena-Hard's metadata (conv_metadata in v0.1) carries the style
// control's counts (see ArenaHardMeta), token_len being meta.CountTokens of
// the answer or else the number of tokens the model generated for it (the
// suite counts with tiktoken's gpt-4o encoding, which relupo does not ship).
func Write(w io.Writer, format string, recs []Record, res []Result, meta Meta) error {
	if len(recs) != len(res) {
		return fmt.Errorf("generate: %d results for %d records", len(res), len(recs))
	}
	if err := CheckFormat(format, recs); err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	now := meta.Time
	if now.IsZero() {
		now = time.Now()
	}
	tstamp := float64(now.UnixNano()) / 1e9
	count := meta.CountTokens
	switch format {
	case FormatJSONL:
		for i, r := range res {
			ids := r.OutputIDs
			if ids == nil {
				ids = []int{}
			}
			if err := enc.Encode(JSONLRecord{OutputIDs: ids, Output: r.Text, FinishReason: r.FinishReason, Instruction: recs[i].Instruction}); err != nil {
				return err
			}
		}
	case FormatAlpacaEval:
		out := make([]AlpacaEvalRecord, len(res))
		for i, r := range res {
			out[i] = AlpacaEvalRecord{Instruction: recs[i].Instruction, Output: strings.TrimSpace(r.Text), Generator: meta.Generator, Dataset: recs[i].Dataset}
		}
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case FormatArenaHard:
		for i, r := range res {
			rec, text := recs[i], strings.TrimSpace(r.Text)
			am := ArenaHardMeta{TokenLen: r.TextTokens, MarkdownCounts: CountMarkdown(text)}
			if count != nil {
				n, err := count(text)
				if err != nil {
					return fmt.Errorf("generate: %s: counting token_len: %w", rec.Where, err)
				}
				am.TokenLen = n
			}
			var v any
			if rec.UID != "" {
				v = ArenaHardAnswer{
					UID: rec.UID, AnsID: answerID(meta.Generator, rec.UID, text), Model: meta.Generator,
					Messages: []ArenaHardMessage{
						{Role: "user", Content: rec.Instruction},
						{Role: "assistant", Content: map[string]string{"answer": text}},
					},
					Tstamp: tstamp, Metadata: am,
				}
			} else {
				v = ArenaHardV01Answer{
					QuestionID: rec.QuestionID, AnswerID: answerID(meta.Generator, string(rec.QuestionID), text), ModelID: meta.Generator,
					Choices:      []ArenaHardChoice{{Index: 0, Turns: []ArenaHardTurn{{Content: text, TokenLen: am.TokenLen}}}},
					Tstamp:       tstamp,
					ConvMetadata: am,
				}
			}
			if err := enc.Encode(v); err != nil {
				return err
			}
		}
	}
	return nil
}

// answerID is a 22-character id in the alphabet of the shortuuid ids
// Arena-Hard writes, derived from the model, the question and the answer so
// that the same answer always gets the same id.
func answerID(parts ...string) string {
	const alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	n := new(big.Int).SetBytes(h[:])
	base := big.NewInt(int64(len(alphabet)))
	var b [22]byte
	m := new(big.Int)
	for i := range b {
		n.DivMod(n, base, m)
		b[i] = alphabet[m.Int64()]
	}
	return string(b[:])
}

// SamplesRecord is one line of the samples layout that
// --num-return-sequences writes: one prompt with all its sampled answers,
// in the row layout `relupo score` reads (package score's Row: id, prompt,
// responses, reference), plus what decoding knows of each answer.
type SamplesRecord struct {
	// ID is the input record's id (or uid, question_id), else its 1-based
	// position in the input.
	ID string `json:"id"`
	// Prompt is the conversation answered; empty for pre-tokenized
	// prompts, whose ids are in PromptInputIDs.
	Prompt         []chat.Message `json:"prompt"`
	PromptInputIDs []int32        `json:"prompt_input_ids,omitempty"`
	// Responses are the K answers' texts, sample 0 first.
	Responses []string `json:"responses"`
	// Reference is the input's known answer ("reference" or "answer"),
	// left out when it had none.
	Reference string `json:"reference,omitempty"`
	// OutputIDs and FinishReasons are each answer's generated ids (the
	// stop token included) and finish reason, as in the jsonl format.
	OutputIDs     [][]int  `json:"output_ids"`
	FinishReasons []string `json:"finish_reasons"`
}

// WriteSamples writes the answers res to recs, k per record (result i·k+j
// is sample j of record i), as one SamplesRecord per line.
func WriteSamples(w io.Writer, recs []Record, res []Result, k int) error {
	k = max(k, 1)
	if len(res) != len(recs)*k {
		return fmt.Errorf("generate: %d results for %d records × %d samples", len(res), len(recs), k)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i, rec := range recs {
		out := SamplesRecord{ID: rec.ID, Prompt: rec.Messages, Reference: rec.Reference,
			Responses: make([]string, k), OutputIDs: make([][]int, k), FinishReasons: make([]string, k)}
		if out.ID == "" {
			out.ID = strconv.Itoa(i + 1)
		}
		if out.Prompt == nil {
			out.Prompt, out.PromptInputIDs = []chat.Message{}, rec.InputIDs
		}
		for j, r := range res[i*k : (i+1)*k] {
			out.Responses[j], out.OutputIDs[j], out.FinishReasons[j] = r.Text, r.OutputIDs, r.FinishReason
			if out.OutputIDs[j] == nil {
				out.OutputIDs[j] = []int{}
			}
		}
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	return nil
}
