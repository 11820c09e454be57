Feature: SDK receipts carry the codes the specification prescribes
  Every SDK message is answered with a Meddelandekvittens (a UBL 2.1 ApplicationResponse in
  Digg's profile). A valid message gets ACCEPTED with no reason; a refused one gets REJECTED
  with at least one reason code: SV for a message that is not well-formed or that the XSD
  refuses, BV for a broken Schematron rule (and then no SV: the XSD accepted it), SIG for a
  bad signature (for IUTs that declare signatures). The receipt must itself validate against the receipt XSD and the Schematron
  rules that run, name the message it answers (the XHE Header/ID) and go back to the
  message's sender (the XHE FromParty). For IUTs that declare receipt = "answer" on the
  message type; the others are not-applicable here.

  @role:receiver @req:SDK-SPEC
  Scenario: a valid SDK message gets an ACCEPTED receipt
    Given the XML message type "sdk-meddelande"
    When the client sends a valid XML message
    Then the receipt is ACCEPTED

  @role:receiver @req:SDK-SPEC
  Scenario Outline: an SDK message with <defect> gets a REJECTED receipt
    Given the XML message type "sdk-meddelande"
    When the client sends an XML message with the defect "<defect>"
    Then the receipt is REJECTED with the code the specification prescribes

    Examples:
      | defect                   |
      | not-well-formed          |
      | wrong-namespace          |
      | missing-required-element |
      | wrong-type               |
      | encoding-mismatch        |
      | schematron-rule          |
      | shipped-negative         |

  @role:receiver @req:SDK-SPEC
  Scenario Outline: an SDK message with the signature case <case> gets a REJECTED receipt
    Given the XML message type "sdk-meddelande"
    When the client sends an XML message with the signature case "<case>"
    Then the receipt is REJECTED with the code the specification prescribes

    Examples:
      | case               |
      | altered-content    |
      | other-organisation |
