package epcis_test

import (
	"testing"

	"github.com/serialine/serialine/central/epcis"
	"github.com/serialine/serialine/central/epcis/epcistest"
)

// TestSchemas validates the scenario documents against GS1's official
// schemas, and shows that the validators reject broken documents.
func TestSchemas(t *testing.T) {
	st := epcis.ScenarioStore(t)
	epcistest.AssertValid(t, epcis.JSONSchemaPath, epcis.XSDPath,
		epcis.WriteScenario(t, st, "json", epcis.FixedOptions()), epcis.WriteScenario(t, st, "xml", epcis.FixedOptions()))
}
