// Package testcert makes a throwaway certificate authority and certificates
// signed by it, for tests of TLS between clients, belay and PostgreSQL, and
// for the bench harness's TLS scenarios.
// Keys are ECDSA P-256; everything is valid from an hour ago for a day.
//
// Concurrency: a CA is safe for concurrent use once made.
//
// It imports nothing of belay.
package testcert
