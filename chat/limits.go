package chat

import (
	"errors"
	"fmt"
	"regexp"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/ardanlabs/jinja"
)

// A chat template comes from a model folder and is untrusted code. The
// engine has no hooks to bound a rendering, so New rewrites the template's
// source to call guard functions that Render supplies, and checks the
// source before compiling it. One rendering is bounded as follows:
//
//   - recursion: at most MaxDepth nested macro calls (a recursive macro
//     would otherwise overflow the Go stack, a fatal error);
//   - steps: at most MaxSteps loop iterations, macro calls and {% set %}
//     assignments together;
//   - time: MaxTime of wall-clock time, checked at every step;
//   - collections: range() yields at most MaxItems items; every value a
//     {% set %} assigns (a string, list or dict) is at most MaxValueBytes
//     long or MaxItems items;
//   - memory: at most MaxAllocBytes allocated by the process during the
//     rendering, checked at every step;
//   - output: at most MaxValueBytes of output;
//   - literals: integer literals above MaxLiteral, and the power operator
//     (**), are refused when the template is compiled, so that
//     'x' * 100000000 or range(10**9) never run;
//   - panics inside the engine (such as a negative repetition count) are
//     errors.
//
// A repetition or concatenation by a count computed at run time is checked
// only at the next step, after it is built.
const (
	MaxDepth      = 64
	MaxSteps      = 1_000_000
	MaxTime       = 30 * time.Second
	MaxItems      = 1_000_000
	MaxValueBytes = 64 << 20
	MaxAllocBytes = 1 << 30
	MaxLiteral    = 1_000_000
)

// guard names the functions the rewritten source calls; no template uses
// names of this form.
const (
	guardStep  = "relupo_guard_step"
	guardEnter = "relupo_guard_enter"
	guardLeave = "relupo_guard_leave"
	guardValue = "relupo_guard_value"
)

// errLimit marks a rendering stopped by a limit.
var errLimit = errors.New("the template exceeds relupo's limits for chat templates")

// guard is the state of one rendering.
type guard struct {
	steps, depth int
	deadline     time.Time
	allocStart   uint64
	sample       []metrics.Sample
}

func newGuard() *guard {
	g := &guard{deadline: time.Now().Add(MaxTime), sample: []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}}
	g.allocStart = g.allocated()
	return g
}

func (g *guard) allocated() uint64 {
	metrics.Read(g.sample)
	if g.sample[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return g.sample[0].Value.Uint64()
}

// step counts one step and checks the step, time and memory budgets.
func (g *guard) step() error {
	g.steps++
	switch {
	case g.steps > MaxSteps:
		return fmt.Errorf("%w: more than %d steps (loop iterations, macro calls and assignments)", errLimit, MaxSteps)
	case time.Now().After(g.deadline):
		return fmt.Errorf("%w: rendering one conversation took more than %v", errLimit, MaxTime)
	case g.allocated()-g.allocStart > MaxAllocBytes:
		return fmt.Errorf("%w: rendering one conversation allocated more than %d MiB", errLimit, MaxAllocBytes>>20)
	}
	return nil
}

// values binds the guard functions (and a bounded range) for a rendering.
func (g *guard) values() map[string]jinja.Value {
	empty := jinja.NewString("")
	return map[string]jinja.Value{
		guardStep: jinja.NewCallable(guardStep, func([]jinja.Value, map[string]jinja.Value) (jinja.Value, error) {
			return empty, g.step()
		}),
		guardEnter: jinja.NewCallable(guardEnter, func([]jinja.Value, map[string]jinja.Value) (jinja.Value, error) {
			g.depth++
			if g.depth > MaxDepth {
				return empty, fmt.Errorf("%w: macros nested more than %d deep (a recursive macro that does not end?)", errLimit, MaxDepth)
			}
			return empty, g.step()
		}),
		guardLeave: jinja.NewCallable(guardLeave, func([]jinja.Value, map[string]jinja.Value) (jinja.Value, error) {
			g.depth--
			return empty, nil
		}),
		guardValue: jinja.NewCallable(guardValue, func(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
			for _, v := range args {
				if err := checkSize(v); err != nil {
					return empty, err
				}
			}
			return empty, g.step()
		}),
		"range": jinja.NewCallable("range", boundedRange),
	}
}

// checkSize refuses a value larger than the limits.
func checkSize(v jinja.Value) error {
	switch {
	case v.IsString() && len(v.AsString()) > MaxValueBytes:
		return fmt.Errorf("%w: a string of %d bytes (the limit is %d MiB)", errLimit, len(v.AsString()), MaxValueBytes>>20)
	case v.IsList() && v.AsList().Len() > MaxItems:
		return fmt.Errorf("%w: a list of %d items (the limit is %d)", errLimit, v.AsList().Len(), MaxItems)
	case v.IsDict() && v.AsDict().Len() > MaxItems:
		return fmt.Errorf("%w: a dict of %d keys (the limit is %d)", errLimit, v.AsDict().Len(), MaxItems)
	}
	return nil
}

// boundedRange is Python's range, refusing more than MaxItems items before
// building any.
func boundedRange(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
	ints := make([]int64, len(args))
	for i, a := range args {
		if !a.IsInt() {
			return jinja.Undefined(), fmt.Errorf("range: argument %d is not an integer", i+1)
		}
		ints[i] = a.AsInt()
	}
	start, stop, step := int64(0), int64(0), int64(1)
	switch len(ints) {
	case 1:
		stop = ints[0]
	case 2:
		start, stop = ints[0], ints[1]
	case 3:
		start, stop, step = ints[0], ints[1], ints[2]
	default:
		return jinja.Undefined(), fmt.Errorf("range: expected 1 to 3 arguments, got %d", len(args))
	}
	if step == 0 {
		return jinja.Undefined(), errors.New("range: step must not be zero")
	}
	var n float64 // in float64: stop-start may overflow int64
	if step > 0 && stop > start {
		n = (float64(stop) - float64(start)) / float64(step)
	} else if step < 0 && stop < start {
		n = (float64(start) - float64(stop)) / -float64(step)
	}
	if n > MaxItems {
		return jinja.Undefined(), fmt.Errorf("%w: range of %.0f items (the limit is %d)", errLimit, n, MaxItems)
	}
	items := make([]jinja.Value, 0, int(n)+1)
	for i := start; step > 0 && i < stop || step < 0 && i > stop; i += step {
		items = append(items, jinja.NewInt(i))
	}
	return jinja.NewList(items), nil
}

// tagRe splits a {% … %} tag's inside into its whitespace-control marks,
// keyword and rest.
var tagRe = regexp.MustCompile(`^([-+]?)\s*([A-Za-z_]*)(.*?)\s*([-+]?)$`)

// endRawRe finds the tag that ends a {% raw %} block.
var endRawRe = regexp.MustCompile(`\{%[-+]?\s*endraw\s*[-+]?%\}`)

// instrument checks a template's source and rewrites it to call the guard
// functions: a step at the start of each loop iteration and after each
// {% set %} (which also checks the size of what it assigns), and
// enter/leave around each macro body. The injected tags render nothing and
// copy the whitespace control of the tag they follow or precede, so the
// output is unchanged.
func instrument(src string) (string, error) {
	var b strings.Builder
	i := 0
	for i < len(src) {
		j := strings.IndexByte(src[i:], '{')
		if j < 0 || i+j+1 >= len(src) {
			b.WriteString(src[i:])
			break
		}
		j += i
		b.WriteString(src[i:j])
		switch src[j+1] {
		case '#':
			end := strings.Index(src[j+2:], "#}")
			if end < 0 {
				b.WriteString(src[j:]) // the compiler reports it
				return b.String(), nil
			}
			end += j + 2 + 2
			b.WriteString(src[j:end])
			i = end
		case '{', '%':
			closer := "}}"
			if src[j+1] == '%' {
				closer = "%}"
			}
			end := closing(src, j+2, closer)
			if end < 0 {
				b.WriteString(src[j:])
				return b.String(), nil
			}
			inner := src[j+2 : end]
			if err := checkExpr(inner); err != nil {
				return "", err
			}
			next := end + 2
			if closer == "}}" {
				b.WriteString(src[j:next])
				i = next
				continue
			}
			m := tagRe.FindStringSubmatch(inner)
			if m == nil {
				b.WriteString(src[j:next])
				i = next
				continue
			}
			open, keyword, rest, closeMark := "{%"+m[1], m[2], m[3], m[4]+"%}"
			switch keyword {
			case "raw":
				loc := endRawRe.FindStringIndex(src[next:])
				if loc == nil {
					b.WriteString(src[j:])
					return b.String(), nil
				}
				next += loc[1]
				b.WriteString(src[j:next])
			case "endmacro":
				fmt.Fprintf(&b, "%s if %s() %%}{%% endif %%}", open, guardLeave)
				b.WriteString(src[j:next])
			case "for", "macro":
				b.WriteString(src[j:next])
				fn := guardStep
				if keyword == "macro" {
					fn = guardEnter
				}
				fmt.Fprintf(&b, "{%% if %s() %%}{%% endif %s", fn, closeMark)
			case "set":
				b.WriteString(src[j:next])
				target, _, inline := strings.Cut(rest, "=")
				if !inline {
					// A block set: its body is checked by the step after it.
					fmt.Fprintf(&b, "{%% if %s() %%}{%% endif %s", guardStep, closeMark)
					break
				}
				fmt.Fprintf(&b, "{%% if %s(%s) %%}{%% endif %s", guardValue, strings.TrimSpace(target), closeMark)
			default:
				b.WriteString(src[j:next])
			}
			i = next
		default:
			b.WriteString(src[j : j+1])
			i = j + 1
		}
	}
	return b.String(), nil
}

// quotes tracks whether a scan of an expression is inside a string
// literal.
type quotes struct{ quote byte }

// at consumes s[k] (or an escape pair inside a literal) and reports
// whether s[k] lies outside string literals, and the index after what it
// consumed.
func (q *quotes) at(s string, k int) (outside bool, next int) {
	c := s[k]
	switch {
	case q.quote != 0:
		if c == '\\' {
			return false, k + 2
		}
		if c == q.quote {
			q.quote = 0
		}
		return false, k + 1
	case c == '\'' || c == '"':
		q.quote = c
		return false, k + 1
	}
	return true, k + 1
}

// closing returns the index of closer in src at or after from, outside
// string literals, or −1.
func closing(src string, from int, closer string) int {
	var q quotes
	for k := from; k < len(src); {
		outside, next := q.at(src, k)
		if outside && strings.HasPrefix(src[k:], closer) {
			return k
		}
		k = next
	}
	return -1
}

// checkExpr refuses, outside string literals, integer literals above
// MaxLiteral and the power operator.
func checkExpr(s string) error {
	var q quotes
	for k := 0; k < len(s); {
		outside, next := q.at(s, k)
		c := s[k]
		switch {
		case !outside:
		case c == '*' && k+1 < len(s) && s[k+1] == '*':
			return fmt.Errorf("%w: the power operator (**) is not allowed in chat templates", errLimit)
		case c >= '0' && c <= '9' && (k == 0 || !isIdent(s[k-1])):
			e := k
			for e < len(s) && (s[e] >= '0' && s[e] <= '9' || s[e] == '_') {
				e++
			}
			next = e
			if e < len(s) && (s[e] == '.' || s[e] == 'e' || s[e] == 'E') {
				break // a float: not a count
			}
			n, err := strconv.ParseInt(strings.ReplaceAll(s[k:e], "_", ""), 10, 64)
			if err != nil || n > MaxLiteral {
				return fmt.Errorf("%w: the integer %s is larger than %d", errLimit, s[k:e], MaxLiteral)
			}
		}
		k = next
	}
	return nil
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.'
}
