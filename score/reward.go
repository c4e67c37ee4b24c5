package score

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"

	"github.com/relupo/relupo/chat"
	"github.com/relupo/relupo/data"
	"github.com/relupo/relupo/kernels"
	"github.com/relupo/relupo/model"
	"github.com/relupo/relupo/safetensors"
	"github.com/relupo/relupo/tokenizer"
)

// RewardOptions configure LoadRewardModel.
type RewardOptions struct {
	// Pool runs the model; nil means a pool of GOMAXPROCS workers, owned
	// (and closed by Close) by the RewardModel.
	Pool *kernels.Pool
	// Tokenizer is the folder of the tokenizer files; "" means the model
	// folder.
	Tokenizer string
	// ChatTemplate overrides the tokenizer's chat template: template text,
	// a .jinja file, a folder or a keyword, as data.EncodeOptions takes it.
	ChatTemplate string
	// MaxTokens is how many tokens one forward pass packs (a longer
	// sequence runs alone); 0 means 4096.
	MaxTokens int
	// MaxLength is the longest sequence scored; a longer one is a failure
	// (NaN). 0 means the model's max_position_embeddings.
	MaxLength int
}

// RewardModel scores responses with a Hugging Face
// *ForSequenceClassification checkpoint, or with ArmoRM's
// LlamaForRewardModelWithGating (see Gating) (LlamaForSequenceClassification,
// MistralForSequenceClassification, Qwen2ForSequenceClassification,
// Qwen3's, and Gemma-2's and Gemma-3's when their trunks are supported): the
// decoder trunk, then score.weight [1, hidden] applied to the final normed
// hidden state, read at one position per sequence, as transformers does:
// the rightmost token that is not config.json's pad_token_id (so a pad id
// ending the text is skipped, one inside it is not, and a sequence of
// nothing but pad ids is read at its first token), or the last token when
// there is no pad_token_id. Sequences are not padded: relupo packs them.
//
// The text scored is the prompt followed by the response as an assistant
// message, rendered with the reward model's chat template and tokenized
// without adding special tokens, as apply_chat_template(messages,
// tokenize=True) does (the way ArmoRM and Skywork-Reward are called). The
// K responses of a row share the tokens their renderings have in common,
// which are run once (see model.Batch); the scores equal those of separate
// sequences up to float32 rounding.
type RewardModel struct {
	// Dir is the model folder.
	Dir string
	// Model is the decoder trunk (see model.LoadTrunk).
	Model *model.Model
	// Head is score.weight's single row [hidden] (nil with Gating).
	Head []float32
	// Gating is ArmoRM's heads when the checkpoint is a
	// LlamaForRewardModelWithGating, else nil. Its score is read at the
	// token before the first pad id (the last token when there is none),
	// as its modeling code does.
	Gating *Gating
	// PadTokenID is config.json's pad_token_id, or -1.
	PadTokenID int
	// Report, when not nil, is told why each response that could not be
	// scored failed.
	Report func(msg string)

	tok       *tokenizer.Tokenizer // nil: token ids only (ScoreTokens)
	tmpl      *chat.Template
	pool      *kernels.Pool
	ownPool   bool
	ws        *model.Workspace
	maxTokens int
	maxLength int
}

// LoadRewardModel reads a reward model folder: config.json naming a
// *ForSequenceClassification architecture, the weights with score.weight
// of shape [1, hidden_size] and no lm_head, and the tokenizer files with a
// chat template.
func LoadRewardModel(dir string, o RewardOptions) (*RewardModel, error) {
	rm, err := loadRewardWeights(dir, o)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*RewardModel, error) {
		rm.Close()
		return nil, err
	}
	tdir := o.Tokenizer
	if tdir == "" {
		tdir = dir
	}
	if rm.tok, err = tokenizer.Load(tdir); err != nil {
		return fail(fmt.Errorf("score: reward model tokenizer: %w", err))
	}
	cfg, err := tokenizer.LoadConfig(tdir)
	if errors.Is(err, fs.ErrNotExist) {
		cfg = &tokenizer.Config{}
	} else if err != nil {
		return fail(fmt.Errorf("score: reward model tokenizer: %w", err))
	}
	src, err := data.TemplateOverride(o.ChatTemplate)
	if err != nil {
		return fail(fmt.Errorf("score: %w", err))
	}
	if src == "" {
		src = cfg.ChatTemplate
	}
	if src == "" {
		return fail(fmt.Errorf("score: reward model %s has no chat template (tokenizer_config.json or chat_template.jinja in %s); give one", dir, tdir))
	}
	if rm.tmpl, err = chat.New(src, cfg.SpecialTokens()); err != nil {
		return fail(fmt.Errorf("score: reward model chat template: %w", err))
	}
	if v := rm.tok.VocabSize(); v > rm.Model.Config.VocabSize {
		return fail(fmt.Errorf("score: reward model %s: the tokenizer has %d ids, more than the model's vocab_size %d", dir, v, rm.Model.Config.VocabSize))
	}
	return rm, nil
}

// loadRewardWeights reads the trunk and the head, without a tokenizer.
func loadRewardWeights(dir string, o RewardOptions) (*RewardModel, error) {
	cfg, err := model.LoadConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("score: reward model: %w", err)
	}
	var head []float32
	var gating *Gating
	switch {
	case cfg.SequenceClassifier():
		head, err = readHead(dir, cfg.HiddenSize)
	case cfg.GatingRewardModel():
		gating, err = readGating(dir, cfg)
	default:
		err = fmt.Errorf("score: reward model %s: config.json's architectures %v is neither a *ForSequenceClassification model nor ArmoRM's LlamaForRewardModelWithGating (a reward model has a score head in place of lm_head)", dir, cfg.Raw["architectures"])
	}
	if err != nil {
		return nil, err
	}
	m, err := loadTrunk(dir)
	if err != nil {
		return nil, fmt.Errorf("score: reward model: %w", err)
	}
	rm := &RewardModel{Dir: dir, Model: m, Head: head, Gating: gating, PadTokenID: m.Config.PadTokenID, pool: o.Pool,
		maxTokens: o.MaxTokens, maxLength: o.MaxLength}
	if rm.pool == nil {
		rm.pool, rm.ownPool = kernels.NewPool(0), true
	}
	if rm.maxTokens <= 0 {
		rm.maxTokens = 4096
	}
	if rm.maxLength <= 0 {
		rm.maxLength = m.Config.MaxPositionEmbeddings
	}
	rm.ws = &model.Workspace{Pool: rm.pool, NoGrad: true}
	return rm, nil
}

// loadTrunk reads the reward model's trunk: a bfloat16 checkpoint's
// weight matrices stay bfloat16 (2 bytes a weight, mapped from the files;
// the products widen them exactly, so the scores are the float32 trunk's
// bit for bit), anything else is read as float32.
func loadTrunk(dir string) (*model.Model, error) {
	m, _, err := model.LoadWith(dir, model.LoadOptions{BaseDType: "exact", Map: true, Trunk: true})
	return m, err
}

// readHead reads score.weight, which must be [1, hidden].
func readHead(dir string, hidden int) ([]float32, error) {
	ck, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		return nil, fmt.Errorf("score: reward model: %w", err)
	}
	defer ck.Close()
	info, ok := ck.Info(model.ScoreHeadTensor)
	if !ok {
		return nil, fmt.Errorf("score: reward model %s: the checkpoint has no %s (the head of a *ForSequenceClassification model)", dir, model.ScoreHeadTensor)
	}
	if !slices.Equal(info.Shape, []int{1, hidden}) {
		return nil, fmt.Errorf("score: reward model %s: %s has shape %v, want [1, %d]: relupo scores with a single label (num_labels 1) over hidden_size %d", dir, model.ScoreHeadTensor, info.Shape, hidden, hidden)
	}
	if !info.DType.IsFloat() {
		return nil, fmt.Errorf("score: reward model %s: %s has dtype %s; want F32, F16 or BF16", dir, model.ScoreHeadTensor, info.DType)
	}
	head, err := ck.Float32(model.ScoreHeadTensor)
	if err != nil {
		return nil, fmt.Errorf("score: reward model: %w", err)
	}
	return head, nil
}

// Close releases the pool the RewardModel made, if any.
func (rm *RewardModel) Close() {
	if rm.ownPool {
		rm.pool.Close()
		rm.ownPool = false
	}
}

// Encode returns the token ids the reward model scores for a response to
// prompt (see RewardModel).
func (rm *RewardModel) Encode(prompt []chat.Message, response string) ([]int32, error) {
	if rm.tok == nil {
		return nil, errors.New("the reward model was loaded without a tokenizer")
	}
	if len(prompt) == 0 {
		return nil, errors.New("the prompt has no text (a pre-tokenized prompt?): the reward model scores rendered conversations")
	}
	msgs := append(slices.Clip(prompt), chat.Message{Role: "assistant", Content: response})
	text, err := rm.tmpl.Render(msgs, false)
	if err != nil {
		return nil, fmt.Errorf("rendering the conversation with the chat template: %w", err)
	}
	ids, err := rm.tok.Encode(text, false)
	if err != nil {
		return nil, fmt.Errorf("tokenizing: %w", err)
	}
	if len(ids) == 0 {
		return nil, errors.New("the conversation renders to no tokens")
	}
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out, nil
}

// readPosition is the position a sequence's score is read at. For a
// *ForSequenceClassification model, transformers' rule: the rightmost token
// that is not the pad id, 0 when every token is, the last token when there
// is no pad id. For ArmoRM (gating), its modeling code's: the token before
// the first pad id, the last token when there is no pad id or the first
// token is one.
func (rm *RewardModel) readPosition(ids []int32) int {
	pad := rm.PadTokenID
	if pad < 0 {
		return len(ids) - 1
	}
	if rm.Gating != nil {
		if i := slices.Index(ids, int32(pad)); i > 0 {
			return i - 1
		}
		return len(ids) - 1
	}
	for t := len(ids) - 1; t >= 0; t-- {
		if int(ids[t]) != pad {
			return t
		}
	}
	return 0
}

// group is the sequences of one row: shared[:prefix] is common to all of
// them and run once when prefix > 0.
type group struct {
	seqs   [][]int32
	prefix int
	out    []float64 // a score per sequence
	fill   func()    // copies out into the row's scores, once run
}

func (g *group) tokens() int {
	n := g.prefix
	for _, s := range g.seqs {
		n += len(s) - g.prefix
	}
	return n
}

// makeGroup finds the prefix the sequences share, leaving each at least one
// token of its own.
func makeGroup(seqs [][]int32, out []float64) *group {
	g := &group{seqs: seqs, out: out}
	if len(seqs) < 2 {
		return g
	}
	p := len(seqs[0])
	for _, s := range seqs {
		p = min(p, len(s)-1)
		for i := 0; i < p; i++ {
			if s[i] != seqs[0][i] {
				p = i
				break
			}
		}
	}
	g.prefix = max(p, 0)
	return g
}

// run scores groups in one forward pass.
func (rm *RewardModel) run(groups []*group) error {
	var b model.Batch
	type read struct {
		g         *group
		i         int
		row, gate int // rows of the batch's tokens: the scored one and ArmoRM's gating input
	}
	var reads []read
	for _, g := range groups {
		p := -1
		if g.prefix > 0 {
			b.Add(nil, g.seqs[0][:g.prefix])
			p = b.NumSeqs() - 1
		}
		for i, s := range g.seqs {
			// row maps a position of s to its row: in the shared prefix or
			// in s's own tokens.
			var row func(pos int) int
			if p >= 0 {
				start, prefixStart := b.Offsets[len(b.Offsets)-1], b.Offsets[p]
				b.AddPrefixed(p, s[g.prefix:])
				row = func(pos int) int {
					if pos < g.prefix {
						return prefixStart + pos
					}
					return start + pos - g.prefix
				}
			} else {
				start := len(b.Tokens)
				b.Add(nil, s)
				row = func(pos int) int { return start + pos }
			}
			r := read{g: g, i: i, row: row(rm.readPosition(s))}
			if rm.Gating != nil {
				r.gate = row(rm.Gating.gatePosition(s)) // found: checked before the run
			}
			reads = append(reads, r)
		}
	}
	h, err := rm.Model.FinalHidden(rm.ws, &b)
	if err != nil {
		return err
	}
	D := rm.Model.Config.HiddenSize
	for _, r := range reads {
		x := h[r.row*D : (r.row+1)*D]
		if rm.Gating != nil {
			r.g.out[r.i] = rm.Gating.score(x, h[r.gate*D:(r.gate+1)*D])
			continue
		}
		var s float64 // the head's dot product, summed in float64
		for j, w := range rm.Head {
			s += float64(w) * float64(x[j])
		}
		r.g.out[r.i] = s
	}
	return nil
}

// checkGating says why ArmoRM cannot score ids: its gating input, the
// pattern that ends the prompt, is missing.
func (rm *RewardModel) checkGating(ids []int32) error {
	if rm.Gating == nil || rm.Gating.gatePosition(ids) >= 0 {
		return nil
	}
	return fmt.Errorf("the tokens hold no %v (ArmoRM reads its gating input where the prompt ends with that sequence: the Llama-3 chat template's <|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n)", rm.Gating.Pattern)
}

// runAll scores every group, packing groups into passes of about
// maxTokens tokens, and calls done with the number of groups finished after
// each pass.
func (rm *RewardModel) runAll(ctx context.Context, groups []*group, done func(n int)) error {
	for i := 0; i < len(groups); {
		if err := ctx.Err(); err != nil {
			return err
		}
		j, n := i, 0
		for j < len(groups) && (j == i || n+groups[j].tokens() <= rm.maxTokens) {
			n += groups[j].tokens()
			j++
		}
		if err := rm.run(groups[i:j]); err != nil {
			return fmt.Errorf("score: reward model: %w", err)
		}
		i = j
		if done != nil {
			done(i)
		}
	}
	return nil
}

// ScoreTokens scores token sequences (each scored on its own, as an
// unpadded batch of one; see RewardModel for the position read).
func (rm *RewardModel) ScoreTokens(ctx context.Context, seqs [][]int32) ([]float64, error) {
	out := make([]float64, len(seqs))
	groups := make([]*group, len(seqs))
	for i, s := range seqs {
		if len(s) == 0 {
			return nil, fmt.Errorf("score: sequence %d is empty", i)
		}
		if err := rm.checkGating(s); err != nil {
			return nil, fmt.Errorf("score: sequence %d: %w", i, err)
		}
		groups[i] = &group{seqs: [][]int32{s}, out: out[i : i+1]}
	}
	return out, rm.runAll(ctx, groups, nil)
}

// Score implements Scorer. A response fails (NaN, counted, and said to
// Report) when its conversation cannot be rendered or tokenized, or is
// longer than RewardOptions.MaxLength.
func (rm *RewardModel) Score(ctx context.Context, rows []Row, progress func(done, total int)) (failed int, err error) {
	groups := make([]*group, 0, len(rows))
	rowOf := make([]int, 0, len(rows)) // the row of each group
	for i := range rows {
		r := &rows[i]
		r.Scores = make([]float64, len(r.Responses))
		var seqs [][]int32
		var idx []int
		for j, resp := range r.Responses {
			r.Scores[j] = math.NaN()
			ids, err := rm.Encode(r.Prompt, resp)
			if err == nil && len(ids) > rm.maxLength {
				err = fmt.Errorf("%d tokens, more than the %d the reward model takes", len(ids), rm.maxLength)
			}
			if err == nil {
				err = rm.checkGating(ids)
			}
			if err != nil {
				failed++
				if rm.Report != nil {
					rm.Report(fmt.Sprintf("%s: response %d: %v", r.name(i), j, err))
				}
				continue
			}
			seqs = append(seqs, ids)
			idx = append(idx, j)
		}
		if len(seqs) == 0 {
			continue
		}
		out := make([]float64, len(seqs))
		groups = append(groups, makeGroup(seqs, out))
		rowOf = append(rowOf, i)
		// fill the row's scores once its group has run
		g := groups[len(groups)-1]
		g.fill = func() {
			for k, j := range idx {
				r.Scores[j] = out[k]
			}
		}
	}
	err = rm.runAll(ctx, groups, func(n int) {
		for _, g := range groups[:n] {
			if g.fill != nil {
				g.fill()
				g.fill = nil
			}
		}
		if progress != nil {
			done := len(rows) // rows before the next group's are done
			if n < len(groups) {
				done = rowOf[n]
			}
			progress(done, len(rows))
		}
	})
	if err == nil && len(groups) == 0 && progress != nil {
		progress(len(rows), len(rows)) // nothing could be scored
	}
	return failed, err
}
