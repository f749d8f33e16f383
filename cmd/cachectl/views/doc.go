// Package views renders what cachectl's commands show, apart from the data
// they show, the way Terraform keeps internal/command/views apart from its
// plans: the plan as text (with colours on a terminal) and JSON, drift
// reports (Markdown, Prometheus text-file metrics, JUnit, the last apply),
// the inventory table and Determined snippets of list, the history table,
// and apply's progress lines. Spec diagnostics render themselves
// (spec.Diagnostics.WriteText/WriteJSON), as HCL's do.
package views
