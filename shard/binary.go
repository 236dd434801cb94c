package shard

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/belaydb/belay/codec/sqlstate"
)

// EncodeBinary is a merged value, text as PostgreSQL writes it (typ's
// output function), in PostgreSQL's binary format of typ (its send
// function), for a client that asked a merged read's columns in binary.
// Types it does not encode are refused with 0A000.
func EncodeBinary(typ uint32, text []byte) ([]byte, error) {
	s := string(text)
	switch typ {
	case oidInt2:
		if v, err := strconv.ParseInt(s, 10, 16); err == nil {
			return binary.BigEndian.AppendUint16(nil, uint16(v)), nil
		}
	case oidInt4:
		if v, err := strconv.ParseInt(s, 10, 32); err == nil {
			return binary.BigEndian.AppendUint32(nil, uint32(v)), nil
		}
	case oidOID:
		if v, err := strconv.ParseUint(s, 10, 32); err == nil {
			return binary.BigEndian.AppendUint32(nil, uint32(v)), nil
		}
	case oidInt8:
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			return binary.BigEndian.AppendUint64(nil, uint64(v)), nil
		}
	case oidFloat4, oidFloat8:
		f, err := strconv.ParseFloat(strings.Replace(s, "Infinity", "Inf", 1), 64)
		if err != nil {
			break
		}
		if typ == oidFloat4 {
			return binary.BigEndian.AppendUint32(nil, math.Float32bits(float32(f))), nil
		}
		if math.IsNaN(f) {
			return binary.BigEndian.AppendUint64(nil, 0x7ff8000000000000), nil // PostgreSQL's NaN
		}
		return binary.BigEndian.AppendUint64(nil, math.Float64bits(f)), nil
	case oidBool:
		switch s {
		case "t":
			return []byte{1}, nil
		case "f":
			return []byte{0}, nil
		}
	case oidText, oidVarchar, oidBpchar, oidName, oidJSON:
		return text, nil
	case oidUUID:
		b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
		if err == nil && len(b) == 16 {
			return b, nil
		}
	case oidDate:
		d, err := time.Parse("2006-01-02", s)
		if err == nil {
			return binary.BigEndian.AppendUint32(nil, uint32(int32((d.Unix()-pgEpoch.Unix())/86400))), nil
		}
	case oidNumeric:
		if b, ok := numericBinary(s); ok {
			return b, nil
		}
	default:
		return nil, &Error{Code: sqlstate.FeatureNotSupported,
			Message: "a read of several shards: the binary format of a merged column of type " + strconv.FormatUint(uint64(typ), 10) + " (ask for it in text)"}
	}
	return nil, &Error{Code: sqlstate.InternalError, Message: "a merged value belay cannot encode in binary: " + s}
}

// oidJSON is json's type OID (its binary format is its text).
const oidJSON = 114

// pgEpoch is PostgreSQL's date and timestamp origin.
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// numericBinary is numeric_send's format of s, numeric's text: ndigits,
// weight, sign, dscale (int16s), then ndigits base-10000 digits.
func numericBinary(s string) ([]byte, bool) {
	var sign uint16
	switch s {
	case "NaN":
		return numericHeader(nil, 0, 0, 0xC000, 0), true
	case "Infinity": // with the dscale PostgreSQL 15 sends for them
		return numericHeader(nil, 0, 0, 0xD000, 32), true
	case "-Infinity":
		return numericHeader(nil, 0, 0, 0xF000, 32), true
	}
	if rest, ok := strings.CutPrefix(s, "-"); ok {
		sign, s = 0x4000, rest
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" || strings.Trim(intPart+frac, "0123456789") != "" {
		return nil, false
	}
	dscale := len(frac)
	// Pad the integer part on the left and the fraction on the right to
	// whole base-10000 digits.
	intPart = strings.Repeat("0", (4-len(intPart)%4)%4) + intPart
	frac += strings.Repeat("0", (4-len(frac)%4)%4)
	all := intPart + frac
	digits := make([]uint16, 0, len(all)/4)
	for i := 0; i < len(all); i += 4 {
		d, _ := strconv.Atoi(all[i : i+4])
		digits = append(digits, uint16(d))
	}
	weight := len(intPart)/4 - 1
	for len(digits) > 0 && digits[0] == 0 {
		digits = digits[1:]
		weight--
	}
	for len(digits) > 0 && digits[len(digits)-1] == 0 {
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 {
		sign, weight = 0, 0
	}
	b := numericHeader(nil, len(digits), weight, sign, dscale)
	for _, d := range digits {
		b = binary.BigEndian.AppendUint16(b, d)
	}
	return b, true
}

func numericHeader(b []byte, ndigits, weight int, sign uint16, dscale int) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(ndigits))
	b = binary.BigEndian.AppendUint16(b, uint16(int16(weight)))
	b = binary.BigEndian.AppendUint16(b, sign)
	return binary.BigEndian.AppendUint16(b, uint16(dscale))
}
