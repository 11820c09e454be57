Feature: SDK messages follow the SDK specifications (XML)
  SDK Meddelande 3.1 in an OASIS XHE 1.0 envelope, validated against the published XSDs
  (libxml2; imports resolved from the shipped files, nothing fetched) and the Schematron
  rules that XPath 1.0 can run (the others are reported not checked). Each class of
  invalid XML is made from the valid example by one edit that the harness's own validator
  refuses before it is sent, then sent to the IUT's SDK message endpoint: it must be
  refused with a declared status (default 400, 413, 415, 422), must not leak internals,
  must not appear among the accepted messages, and a valid message is accepted right
  after. When the IUT config declares signatures (signature = "enveloped"), every
  message is signed after its mutation (xml_signature.feature checks the signatures);
  receipts are not checked yet; the SDK message's XSDs have no enumeration or pattern its example reaches, so that class is
  not listed here.

  @role:receiver @req:SDK-SPEC
  Scenario Outline: an SDK message with <defect> is refused
    Given the XML message type "sdk-meddelande"
    When the client sends an XML message with the defect "<defect>"
    Then the XML message is refused with a declared status
    And the refusal leaks no internals
    And the message is not among the accepted messages
    And a valid XML message is accepted right after

    Examples:
      | defect                   |
      | not-well-formed          |
      | wrong-namespace          |
      | missing-namespace        |
      | missing-required-element |
      | element-out-of-order     |
      | unexpected-element       |
      | wrong-type               |
      | encoding-mismatch        |
      | schematron-rule          |
      | shipped-negative         |
