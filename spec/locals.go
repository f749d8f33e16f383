package spec

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

const (
	localUnvisited = iota
	localVisiting
	localDone
)

// declareLocals collects the attributes of all locals blocks.
func (l *loader) declareLocals(blocks []*hcl.Block) {
	for _, b := range blocks {
		attrs, d := b.Body.JustAttributes()
		l.add(d)
		for _, a := range sortedAttrs(attrs) {
			if prev, dup := l.locals[a.Name]; dup {
				l.errorf(a.NameRange.Ptr(), "Duplicate local value", "A local value named %q was already defined at %s.", a.Name, posString(prev.NameRange))
				continue
			}
			l.locals[a.Name] = a
		}
	}
}

// evalLocals evaluates the locals in dependency order and reports cycles.
func (l *loader) evalLocals() {
	order := make([]*hcl.Attribute, 0, len(l.locals))
	for _, a := range l.locals {
		order = append(order, a)
	}
	sortAttrs(order)
	for _, a := range order {
		l.evalLocal(a.Name, nil)
	}
	l.ctx = l.evalCtx() // final: everything evaluated
}

// evalLocal evaluates one local after the locals it refers to. stack is the
// chain of locals being evaluated, to name the members of a cycle.
func (l *loader) evalLocal(name string, stack []string) {
	switch l.localState[name] {
	case localDone:
		return
	case localVisiting:
		// A cycle: the part of the stack from name on, back to name.
		i := 0
		for i < len(stack) && stack[i] != name {
			i++
		}
		cycle := append(append([]string{}, stack[i:]...), name)
		a := l.locals[name]
		l.errorf(a.NameRange.Ptr(), "Cycle in local values", "The local values refer to each other in a cycle: local.%s.", strings.Join(cycle, " → local."))
		for _, n := range cycle {
			l.localVals[n] = cty.DynamicVal
			l.localState[n] = localDone
		}
		return
	}
	a := l.locals[name]
	l.localState[name] = localVisiting
	stack = append(stack, name)
	for _, tr := range a.Expr.Variables() {
		if tr.RootName() != "local" || len(tr) < 2 {
			continue
		}
		if ta, ok := tr[1].(hcl.TraverseAttr); ok {
			if _, declared := l.locals[ta.Name]; declared {
				l.evalLocal(ta.Name, stack)
			}
		}
	}
	if l.localState[name] == localDone { // part of a cycle found below
		return
	}
	l.ctx = nil
	v, _ := l.eval(a.Expr)
	l.localVals[name] = v
	l.localState[name] = localDone
}
