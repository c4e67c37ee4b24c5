package train

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/internal/atomicfile"
)

// A reference log-prob file (`relupo logps` output, --ref-logps input, and
// the cache a training run keeps in output_dir) is JSON Lines: first a
// header {"relupo_logps": Provenance} saying what produced it, then one
// LogpsLine per pair in data order. There is one writer ([LogpsFile.Write])
// and one reader ([ReadLogpsFile]); [LogpsFile.Attach] refuses a file made
// from other data or other data options, naming the first pair that
// differs.

// logpsVersion is the version of the file layout.
const logpsVersion = 1

// Provenance records what produced a reference log-prob file: the model,
// the data files (with their sizes and SHA-256) and every option that
// decides which token ids each pair has.
type Provenance struct {
	Version int    `json:"version"`
	Model   string `json:"model"`
	// Adapter is the LoRA adapter folder run on top of Model, if any.
	Adapter string     `json:"adapter,omitempty"`
	Data    []FileInfo `json:"data"`
	// The data options of DataConfig, as the user named them.
	DataFormat                     string `json:"data_format"`
	MaxLength                      int    `json:"max_length"`
	MaxPromptLength                int    `json:"max_prompt_length"`
	TruncationMode                 string `json:"truncation_mode"`
	ChatTemplate                   string `json:"chat_template"`
	ChatTemplateKwargs             string `json:"chat_template_kwargs,omitempty"` // JSON, keys sorted
	CompletionOnlyAssistantContent bool   `json:"completion_only_assistant_content"`
	SkipInvalid                    bool   `json:"skip_invalid"`
	// ComputeDType is the precision of the matrix products that computed
	// the values (informational: it is not checked).
	ComputeDType string `json:"compute_dtype"`
	Pairs        int    `json:"pairs"`
}

// FileInfo identifies a data file (or saved dataset folder) by content.
type FileInfo struct {
	Path     string  `json:"path"`
	Fraction float64 `json:"fraction"`
	Bytes    int64   `json:"bytes"`
	SHA256   string  `json:"sha256"`
}

// LogpsLine is one pair of a reference log-prob file: the summed response
// log-probs, their label counts, the prompt length and a hash of the pair's
// token ids (FNV-1a 64 over prompt, chosen and rejected).
type LogpsLine struct {
	ChosenLogps    float64 `json:"chosen_logps"`
	RejectedLogps  float64 `json:"rejected_logps"`
	ChosenTokens   int     `json:"chosen_tokens"`
	RejectedTokens int     `json:"rejected_tokens"`
	PromptTokens   int     `json:"prompt_tokens"`
	IDs            string  `json:"ids"`
}

// LogpsFile is a reference log-prob file in memory.
type LogpsFile struct {
	Provenance Provenance
	Lines      []LogpsLine
}

// provenance describes the data c loads for model from the files (see
// hashFiles), holding pairs.
func (c DataConfig) provenance(model string, files []FileInfo, pairs int) Provenance {
	p := Provenance{Version: logpsVersion, Model: model, DataFormat: string(c.Format), Data: files, Pairs: pairs,
		MaxLength: c.Truncation.MaxLength, MaxPromptLength: c.Truncation.MaxPromptLength, TruncationMode: c.Truncation.Mode,
		ChatTemplate: c.Encode.ChatTemplate, ChatTemplateKwargs: TemplateVars(c.Encode.TemplateVars).String(),
		CompletionOnlyAssistantContent: c.Encode.AssistantHeaderInPrompt, SkipInvalid: c.SkipInvalid}
	if p.DataFormat == "" {
		p.DataFormat = string(data.FormatAuto)
	}
	return p
}

// hashFiles identifies every data file by its size and SHA-256 (a pass
// over each file, so a run does it once).
func hashFiles(srcs []data.Source) ([]FileInfo, error) {
	var out []FileInfo
	for _, s := range srcs {
		fi, err := fileInfo(s)
		if err != nil {
			return nil, err
		}
		out = append(out, fi)
	}
	return out, nil
}

// fileInfo identifies a data source by content: the file's bytes, or for a
// datasets save_to_disk folder its data files' bytes in order.
func fileInfo(s data.Source) (FileInfo, error) {
	files, err := data.Files(s.Path) // a save_to_disk folder: its files, in order
	if err != nil {
		return FileInfo{}, err
	}
	h := sha256.New()
	var n int64
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return FileInfo{}, fmt.Errorf("data: %w", err)
		}
		m, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return FileInfo{}, fmt.Errorf("data: %s: %w", path, err)
		}
		n += m
	}
	frac := s.Fraction
	if frac == 0 {
		frac = 1
	}
	return FileInfo{Path: s.Path, Fraction: frac, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// idsHash fingerprints an example's token ids.
func idsHash(e data.Example) string {
	h := fnv.New64a()
	var b [4]byte
	for i, part := range [][]int32{e.Prompt, e.Chosen, e.Rejected} {
		if i > 0 {
			h.Write([]byte{0xff, 0xff, 0xff, 0xff, byte(i)}) // separator: no id is negative
		}
		for _, id := range part {
			binary.LittleEndian.PutUint32(b[:], uint32(id))
			h.Write(b[:])
		}
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// newLogpsLine records pair e with its log-probs.
func newLogpsLine(e data.Example, chosen, rejected float64, chosenTokens, rejectedTokens int) LogpsLine {
	return LogpsLine{ChosenLogps: chosen, RejectedLogps: rejected, ChosenTokens: chosenTokens, RejectedTokens: rejectedTokens,
		PromptTokens: len(e.Prompt), IDs: idsHash(e)}
}

// Write writes the file: the header, then one line per pair.
func (f *LogpsFile) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(map[string]Provenance{"relupo_logps": f.Provenance}); err != nil {
		return err
	}
	for _, l := range f.Lines {
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteFile writes the file at path atomically (a temporary file, synced
// and renamed), creating its folder.
func (f *LogpsFile) WriteFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("logps: %w", err)
	}
	if err := atomicfile.Write(path, f.Write); err != nil {
		return fmt.Errorf("logps: %w", err)
	}
	return nil
}

// ReadLogpsFile reads a reference log-prob file.
func ReadLogpsFile(path string) (*LogpsFile, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ref logps: %w", err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	f := &LogpsFile{}
	line, header := 0, false
	for sc.Scan() {
		line++
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		if !header {
			var h struct {
				P *Provenance `json:"relupo_logps"`
			}
			if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.P == nil {
				return nil, fmt.Errorf("ref logps: %s line %d: no provenance header (this file was not written by this version of 'relupo logps'); regenerate it with 'relupo logps' and the training run's data options, or put reference values in the data as ref_chosen_logps and ref_rejected_logps columns", path, line)
			}
			if h.P.Version != logpsVersion {
				return nil, fmt.Errorf("ref logps: %s: file version %d, this relupo reads version %d; regenerate it with 'relupo logps'", path, h.P.Version, logpsVersion)
			}
			f.Provenance, header = *h.P, true
			continue
		}
		var l struct {
			LogpsLine
			C *float64 `json:"chosen_logps"`
			R *float64 `json:"rejected_logps"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("ref logps: %s line %d: %w", path, line, err)
		}
		if l.C == nil || l.R == nil || l.IDs == "" {
			return nil, fmt.Errorf("ref logps: %s line %d: needs chosen_logps, rejected_logps and ids", path, line)
		}
		l.ChosenLogps, l.RejectedLogps = *l.C, *l.R
		f.Lines = append(f.Lines, l.LogpsLine)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ref logps: %s: %w", path, err)
	}
	if !header {
		return nil, fmt.Errorf("ref logps: %s is empty", path)
	}
	if len(f.Lines) != f.Provenance.Pairs {
		return nil, fmt.Errorf("ref logps: %s holds %d pairs, its header says %d: the file is incomplete", path, len(f.Lines), f.Provenance.Pairs)
	}
	return f, nil
}

// check reports the first way in which p, the provenance of a file, does
// not describe the data that want describes. The model is not compared
// (the reference model is meant to differ from the policy), nor are file
// paths (a moved file is the same data) or the compute dtype.
func (p Provenance) check(want Provenance) error {
	type field struct {
		name      string
		got, want any
	}
	for _, f := range []field{
		{"data_format", p.DataFormat, want.DataFormat},
		{"max_length", p.MaxLength, want.MaxLength},
		{"max_prompt_length", p.MaxPromptLength, want.MaxPromptLength},
		{"truncation_mode", p.TruncationMode, want.TruncationMode},
		{"chat_template", p.ChatTemplate, want.ChatTemplate},
		{"chat_template_kwargs", p.ChatTemplateKwargs, want.ChatTemplateKwargs},
		{"completion_only_assistant_content", p.CompletionOnlyAssistantContent, want.CompletionOnlyAssistantContent},
		{"skip_invalid", p.SkipInvalid, want.SkipInvalid},
		{"number of data files", len(p.Data), len(want.Data)},
	} {
		if f.got != f.want {
			return fmt.Errorf("it was made with %s %v, this run uses %v", f.name, f.got, f.want)
		}
	}
	for i, d := range p.Data {
		w := want.Data[i]
		if d.SHA256 != w.SHA256 || d.Fraction != w.Fraction {
			return fmt.Errorf("its data file %d is %s (fraction %v, %d bytes, sha256 %.12s…), this run's is %s (fraction %v, %d bytes, sha256 %.12s…)",
				i+1, d.Path, d.Fraction, d.Bytes, d.SHA256, w.Path, w.Fraction, w.Bytes, w.SHA256)
		}
	}
	return nil
}

// Attach checks that the file was made from exactly these examples (its
// provenance against want, then every pair's token counts and ids) and
// sets each example's reference sums. path names the file in errors.
func (f *LogpsFile) Attach(path string, exs []data.Example, want Provenance) error {
	if err := f.Provenance.check(want); err != nil {
		return fmt.Errorf("ref logps: %s does not belong to this data: %v; regenerate it with 'relupo logps' and the same data options", path, err)
	}
	if len(f.Lines) != len(exs) {
		return fmt.Errorf("ref logps: %s holds %d pairs, the training data %d: regenerate it with 'relupo logps' and the same data options", path, len(f.Lines), len(exs))
	}
	for i, e := range exs {
		l := f.Lines[i]
		c, r := data.Labels(e.Prompt, e.Chosen), data.Labels(e.Prompt, e.Rejected)
		if l.PromptTokens != len(e.Prompt) || l.ChosenTokens != c || l.RejectedTokens != r || l.IDs != idsHash(e) {
			return fmt.Errorf("ref logps: %s: pair %d (%s) differs: the file has %d prompt tokens and %d/%d chosen/rejected labels (ids %s), the data %d and %d/%d (ids %s); regenerate it with 'relupo logps' and the same data options",
				path, i+1, e.Source, l.PromptTokens, l.ChosenTokens, l.RejectedTokens, l.IDs, len(e.Prompt), c, r, idsHash(e))
		}
	}
	for i := range exs {
		exs[i].SetRef(f.Lines[i].ChosenLogps, f.Lines[i].RejectedLogps)
	}
	return nil
}
