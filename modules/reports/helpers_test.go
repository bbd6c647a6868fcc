package reports_test

import "encoding/json"

func jsonRoundTrip(in any, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func ptr(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}
