package kernels

import "math"

// Attention geometry for packed sequences: tokens of several sequences are
// concatenated with no padding, and sequence s occupies rows
// offsets[s]..offsets[s+1]. Attention is causal within a sequence and never
// crosses a boundary (block-diagonal causal mask). q is [N, heads·headDim];
// k and v are [N, kvHeads·headDim]; query head h reads key/value head
// h / (heads/kvHeads), as Hugging Face's repeat_kv does.
//
// A sequence may also see all rows of an earlier sequence, its prefix: with
// Prefix[s] = p ≥ 0, every row of s attends to the rows of p and then
// causally to its own. This is how a pair's prompt runs once while both
// responses attend to it. A prefix sequence has no prefix itself.
//
// The scores are q·k times Scale (1/√headDim when 0), capped to
// SoftCap·tanh(s/SoftCap) when SoftCap > 0 (Gemma-2's attn_logit_softcapping),
// and with Window > 0 a query sees only the Window most recent positions,
// itself included: the query at position i (counted from the start of its
// prefix, if any) attends to the key at position j when i − Window < j ≤ i,
// as Hugging Face's sliding-window mask does.
type AttnShape struct {
	Offsets []int // len = sequences+1, Offsets[0] = 0, Offsets[last] = N
	Prefix  []int // nil, or per sequence the index of its prefix sequence (-1: none)
	Heads   int
	KVHeads int
	HeadDim int
	Scale   float32 // 0: 1/√HeadDim
	SoftCap float32 // > 0: scores ← SoftCap·tanh(scores/SoftCap)
	Window  int     // > 0: sliding-window attention over the last Window positions
}

func (a AttnShape) group() int { return a.Heads / a.KVHeads }

// scale returns the factor of q·k.
func (a AttnShape) scale() float32 {
	if a.Scale != 0 {
		return a.Scale
	}
	return float32(1 / math.Sqrt(float64(a.HeadDim)))
}

// firstKey returns the first key column the query at position pos sees.
func (a AttnShape) firstKey(pos int) int {
	if a.Window > 0 {
		return max(0, pos-a.Window+1)
	}
	return 0
}

// prefix returns the first row and the length of sequence s's prefix.
func (a AttnShape) prefix(s int) (start, n int) {
	if a.Prefix == nil || a.Prefix[s] < 0 {
		return 0, 0
	}
	p := a.Prefix[s]
	return a.Offsets[p], a.Offsets[p+1] - a.Offsets[p]
}

// groups lists the sequences that share key/value rows: each sequence
// without a prefix, followed by the sequences whose prefix it is. A backward
// pass that gives each group to one worker never has two workers write the
// same rows of dk or dv.
func (a AttnShape) groups() [][]int {
	nseq := len(a.Offsets) - 1
	idx := make([]int, nseq)
	var out [][]int
	for s := 0; s < nseq; s++ {
		if a.Prefix == nil || a.Prefix[s] < 0 {
			idx[s] = len(out)
			out = append(out, []int{s})
		}
	}
	for s := 0; s < nseq; s++ {
		if a.Prefix != nil && a.Prefix[s] >= 0 {
			g := idx[a.Prefix[s]]
			out[g] = append(out[g], s)
		}
	}
	return out
}

// keyRow maps column j of a row's scores to its key row: the prefix's rows
// first, then the sequence's own from start.
func keyRow(j, pfx0, np, start int) int {
	if j < np {
		return pfx0 + j
	}
	return start + j - np
}

// AttentionForward computes out = softmax(q·kᵀ/√headDim, causal) · v for every
// query row and head, and saves lse (log-sum-exp of the scaled scores,
// [N, heads]) so that the backward pass can recompute probabilities without
// storing a T×T matrix.
func AttentionForward(p *Pool, out, lse, q, k, v []float32, sh AttnShape) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartAttention, attnFlops(sh, 2))
	}
	hd, H, KV := sh.HeadDim, sh.Heads, sh.KVHeads
	scale, sc := sh.scale(), sh.SoftCap
	type task struct{ s, h, t0, t1 int }
	var tasks []task
	const qBlock = 32
	for s := 0; s+1 < len(sh.Offsets); s++ {
		lo, hi := sh.Offsets[s], sh.Offsets[s+1]
		for h := 0; h < H; h++ {
			for t := lo; t < hi; t += qBlock {
				tasks = append(tasks, task{s, h, t, min(t+qBlock, hi)})
			}
		}
	}
	g := sh.group()
	p.For(len(tasks), func(i int) {
		tk := tasks[i]
		start := sh.Offsets[tk.s]
		pfx0, np := sh.prefix(tk.s)
		kvh := tk.h / g
		scores := make([]float32, np+tk.t1-start)
		for t := tk.t0; t < tk.t1; t++ {
			qt := q[(t*H+tk.h)*hd : (t*H+tk.h+1)*hd]
			n := np + t - start + 1
			lo := sh.firstKey(n - 1)
			row := scores[lo:n]
			for i := range row {
				kr := keyRow(lo+i, pfx0, np, start)
				row[i] = Dot(qt, k[(kr*KV+kvh)*hd:(kr*KV+kvh+1)*hd]) * scale
				if sc > 0 {
					row[i] = softcap(row[i], sc)
				}
			}
			mx := maxOf(row)
			sum := expAffine(row, row, 1, mx, 1)
			inv := float32(1 / sum)
			o := out[(t*H+tk.h)*hd : (t*H+tk.h+1)*hd]
			clear(o)
			for i, e := range row {
				kr := keyRow(lo+i, pfx0, np, start)
				Axpy(o, e*inv, v[(kr*KV+kvh)*hd:(kr*KV+kvh+1)*hd])
			}
			lse[t*H+tk.h] = mx + float32(math.Log(sum))
		}
	})
}

// AttentionBackward accumulates dq, dk and dv from dout, given the forward
// inputs q, k, v, its output out and the saved lse. Probabilities are
// recomputed: p = exp(q·k·scale − lse). The work is split by (group of
// sequences sharing rows, key/value head) so that no two workers write the
// same dk or dv rows.
func AttentionBackward(p *Pool, dq, dk, dv, dout, q, k, v, out, lse []float32, sh AttnShape) {
	if pr := p.Profile(); pr != nil {
		defer pr.Stop(pr.Start(), PartAttention, attnFlops(sh, 5))
	}
	hd, H, KV := sh.HeadDim, sh.Heads, sh.KVHeads
	scale, sc := sh.scale(), sh.SoftCap
	g := sh.group()
	groups := sh.groups()
	p.For(len(groups)*KV, func(i int) {
		kvh := i % KV
		for _, s := range groups[i/KV] {
			start, end := sh.Offsets[s], sh.Offsets[s+1]
			pfx0, np := sh.prefix(s)
			ds := make([]float32, np+end-start)
			for h := kvh * g; h < (kvh+1)*g; h++ {
				for t := start; t < end; t++ {
					row := (t*H + h) * hd
					qt, dot, ot := q[row:row+hd], dout[row:row+hd], out[row:row+hd]
					dqt := dq[row : row+hd]
					l := lse[t*H+h]
					dsum := Dot(dot, ot) // D_t = Σ_j p_j (dout·v_j) = dout·out
					n := np + t - start + 1
					lo := sh.firstKey(n - 1)
					d := ds[lo:n]
					for i := range d {
						kr := (keyRow(lo+i, pfx0, np, start)*KV + kvh) * hd
						s := Dot(qt, k[kr:kr+hd]) * scale
						dcap := float32(1) // ∂(capped score)/∂(score)
						if sc > 0 {
							th := tanh32(s / sc)
							s, dcap = sc*th, 1-th*th
						}
						pj := float32(math.Exp(float64(s - l)))
						dpj := Dot(dot, v[kr:kr+hd])
						Axpy(dv[kr:kr+hd], pj, dot)
						d[i] = pj * (dpj - dsum) * dcap * scale
					}
					for i, dsj := range d {
						kr := (keyRow(lo+i, pfx0, np, start)*KV + kvh) * hd
						Axpy(dqt, dsj, k[kr:kr+hd])
						Axpy(dk[kr:kr+hd], dsj, qt)
					}
				}
			}
		}
	})
}
