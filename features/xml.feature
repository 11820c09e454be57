Feature: SDK messages follow the SDK specifications (XML)
  SDK Meddelande 3.1 in an OASIS XHE 1.0 envelope, validated against the published XSDs
  (libxml2; imports resolved from the shipped files, nothing fetched) and the Schematron
  rules that XPath 1.0 can run (the others are reported not checked). Each class of
  invalid XML is made from the valid example by one edit that the harness's own validator
  refuses before it is sent, then sent to the IUT's SDK message endpoint: it must be
  refused with a declared status (default 400, 413, 415, 422), must not leak internals,
  must not appear among the accepted messages, and a valid message is accepted right
  after. When the IUT config declares signatures (signature = "enveloped"), every
  message is signed after its mutation (xml_signature.feature checks the signatures).
  Receipts are checked in xml_receipts.feature, XML attacks in xml_attacks.feature;
  the SDK message's XSDs have no enumeration or pattern its example reaches, so that class
  is not listed here. Generated cases (random edits, seeded) are shrunk, when one is
  accepted, to a minimal counter-example.
  As a sender, the IUT is asked to send SDK messages of a type it declares it sends
  (sender.xml_messages) to a simulated receiver, at that type's endpoint; every body that
  arrives must be sent as XML and be valid against the XSD and the Schematron rules that
  run (those that cannot run are reported not checked, never passed). Each invalid one is
  reported with its message id, the XPath and the rule id. No message at all fails.

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

  @role:sender @req:SDK-SPEC
  Scenario: the SDK messages the IUT sends are valid against their XSD and Schematron
    Given the XML message type "sdk-meddelande"
    And a simulated receiver that answers 200
    When the IUT sends 3 XML messages to the simulated receiver
    Then every XML message the IUT sent is valid against its XSD and Schematron

  # Generated and shrunk (as for JSON): cases of one to three random edits of the example
  # (drop, duplicate, swap or rename elements, drop attributes, wrong or rule-breaking text,
  # changed namespaces, ISO-8859-1 bytes), each refused by provsten's validator before it
  # is sent, seed in the evidence. The first one the IUT accepts is shrunk (at most 256
  # requests, 60 s) to the smallest document the validator still refuses for the same rule
  # and the IUT still accepts; the report shows it, the rule and XPath, and the shrink steps.
  @role:receiver @req:SDK-SPEC
  Scenario: 100 generated invalid SDK messages are all refused
    Given the XML message type "sdk-meddelande"
    When the client sends 100 generated invalid XML messages
    Then every generated invalid XML message is refused
