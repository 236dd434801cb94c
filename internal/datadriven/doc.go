// Package datadriven runs tests written as files of commands and their
// expected output, after the style of etcd-io/raft's and CockroachDB's
// datadriven tests (written anew here): a test file is a sequence of
//
//	command arg arg
//	input line
//	----
//	expected output
//
// blocks separated by blank lines. RunFile calls a function for each block
// and compares what it returns with the expected output; run the tests with
// -rewrite to write the actual output into the files instead. Lines that
// begin with # between blocks are comments and are kept.
//
// It imports nothing of belay.
package datadriven
