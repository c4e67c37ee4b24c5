package tokenizer

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// bpe is a byte-pair-encoding model.
type bpe struct {
	vocab        map[string]int
	inv          []string // id -> token; valid where vocab[inv[id]] == id
	merges       map[uint64]merge
	unkToken     string
	unkID        int // -1 when there is no unknown token
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	byteIDs      [256]int
	// splitMeta reports that no merge joins a "▁" to a preceding
	// character other than "▁" (see splitsAtMeta), so that a word can be
	// encoded in pieces that each start at such a "▁".
	splitMeta bool

	mu    sync.Mutex
	cache map[string][]int
}

// merge is the rank of a pair and the id of the token it produces.
type merge struct {
	rank int32
	id   int32
}

// maxCacheEntries bounds the per-word cache; once full, new words are
// encoded without being remembered.
const maxCacheEntries = 1 << 17

// maxCachedWordLen keeps very long words (a whole line without spaces for
// SentencePiece-style tokenizers) out of the cache.
const maxCachedWordLen = 256

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func (m *bpe) token(id int) (string, bool) {
	if id < 0 || id >= len(m.inv) {
		return "", false
	}
	tok := m.inv[id]
	if got, ok := m.vocab[tok]; !ok || got != id {
		return "", false
	}
	return tok, true
}

// meta is the SentencePiece space, U+2581.
const meta = "\u2581"

// splitsAtMeta reports whether BPE on a word gives the same ids as BPE on
// its pieces cut before every "▁" that follows another character than "▁".
// SentencePiece-style models (Llama-2, Mistral) have no pre-tokenizer, so a
// whole text is one word; cutting it lets long texts be merged in short
// pieces, and cached. The cut is exact when no merge can join symbols across
// it: no merge (a, b) where b starts with "▁" and a does not end with one.
// Merges then run within each piece exactly as they would in the whole word,
// since a merge changes only the candidates beside it.
func splitsAtMeta(m *bpe, pairs [][2]string) bool {
	if m.prefix != "" || m.suffix != "" || m.ignoreMerges {
		return false
	}
	if _, ok := m.vocab[meta]; !ok {
		return false // "▁" would become unknown, and unknown tokens may be fused
	}
	for _, p := range pairs {
		if strings.HasPrefix(p[1], meta) && !strings.HasSuffix(p[0], meta) {
			return false
		}
	}
	return true
}

// tokenize appends the ids of one pre-token to dst.
func (m *bpe) tokenize(dst []int, word string) []int {
	if !m.splitMeta {
		return m.tokenizeWord(dst, word)
	}
	start := 0
	for i := 0; i < len(word); {
		j := strings.Index(word[i:], meta)
		if j < 0 {
			break
		}
		i += j
		if i > start && !strings.HasSuffix(word[start:i], meta) {
			dst = m.tokenizeWord(dst, word[start:i])
			start = i
		}
		i += len(meta)
	}
	return m.tokenizeWord(dst, word[start:])
}

// tokenizeWord appends the ids of word, through the per-word cache.
func (m *bpe) tokenizeWord(dst []int, word string) []int {
	cacheable := len(word) <= maxCachedWordLen
	if cacheable {
		m.mu.Lock()
		ids, ok := m.cache[word]
		m.mu.Unlock()
		if ok {
			return append(dst, ids...)
		}
	}
	ids := m.encodeWord(word)
	if cacheable {
		m.mu.Lock()
		if len(m.cache) < maxCacheEntries {
			m.cache[word] = ids
		}
		m.mu.Unlock()
	}
	return append(dst, ids...)
}

// symbol is one node of the doubly linked list a word is merged in.
type symbol struct {
	id         int32 // -1 once merged into its left neighbour
	prev, next int32
}

// candidate is a possible merge of symbols[left] with its right neighbour.
type candidate struct {
	rank        int32
	left        int32
	leftID      int32
	rightID     int32
	mergedToken int32
}

func (c candidate) less(o candidate) bool {
	if c.rank != o.rank {
		return c.rank < o.rank
	}
	return c.left < o.left
}

func (m *bpe) encodeWord(word string) []int {
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return []int{id}
		}
	}
	syms := m.initialSymbols(word)
	if len(syms) > 1 {
		m.mergeAll(syms)
	}
	ids := make([]int, 0, len(syms))
	for i := 0; i >= 0 && i < len(syms); i = int(syms[i].next) {
		ids = append(ids, int(syms[i].id))
	}
	return ids
}

// initialSymbols turns each character into a symbol, falling back to byte
// tokens or the unknown token for characters outside the vocabulary.
func (m *bpe) initialSymbols(word string) []symbol {
	syms := make([]symbol, 0, len(word))
	add := func(id int) {
		n := int32(len(syms))
		syms = append(syms, symbol{id: int32(id), prev: n - 1, next: n + 1})
	}
	for i := 0; i < len(word); {
		_, size := utf8.DecodeRuneInString(word[i:])
		end := i + size
		s := word[i:end]
		if m.prefix != "" && i > 0 {
			s = m.prefix + s
		}
		if m.suffix != "" && end == len(word) {
			s += m.suffix
		}
		char := word[i:end]
		i = end
		if id, ok := m.vocab[s]; ok {
			add(id)
			continue
		}
		if m.byteFallback && m.hasBytes(char) {
			for j := 0; j < len(char); j++ {
				add(m.byteIDs[char[j]])
			}
			continue
		}
		if m.unkID < 0 {
			continue // no unknown token: the character is dropped
		}
		if m.fuseUnk && len(syms) > 0 && int(syms[len(syms)-1].id) == m.unkID {
			continue
		}
		add(m.unkID)
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	return syms
}

func (m *bpe) hasBytes(s string) bool {
	for i := 0; i < len(s); i++ {
		if m.byteIDs[s[i]] < 0 {
			return false
		}
	}
	return true
}

// mergeAll applies merges lowest rank first (leftmost among equal ranks)
// until none applies, like Hugging Face's Word::merge_all.
func (m *bpe) mergeAll(syms []symbol) {
	h := make(candHeap, 0, len(syms))
	push := func(left int32) {
		if left < 0 {
			return
		}
		right := syms[left].next
		if right < 0 {
			return
		}
		a, b := syms[left].id, syms[right].id
		if mg, ok := m.merges[pairKey(int(a), int(b))]; ok {
			h.push(candidate{rank: mg.rank, left: left, leftID: a, rightID: b, mergedToken: mg.id})
		}
	}
	for i := range syms {
		push(int32(i))
	}
	for len(h) > 0 {
		c := h.pop()
		l := &syms[c.left]
		if l.id != c.leftID || l.next < 0 {
			continue
		}
		r := &syms[l.next]
		if r.id != c.rightID {
			continue
		}
		l.id = c.mergedToken
		r.id = -1
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = c.left
		}
		push(l.prev)
		push(c.left)
	}
}

// candHeap is a binary min-heap of merge candidates.
type candHeap []candidate

func (h *candHeap) push(c candidate) {
	*h = append(*h, c)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].less(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *candHeap) pop() candidate {
	s := *h
	top := s[0]
	n := len(s) - 1
	s[0] = s[n]
	s = s[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && s[l].less(s[m]) {
			m = l
		}
		if r < n && s[r].less(s[m]) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

// byteToken is the SentencePiece name of a fallback byte, e.g. "<0x0A>".
func byteToken(b byte) string { return fmt.Sprintf("<0x%02X>", b) }
