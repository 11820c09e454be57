Feature: SDK messages are signed by the sending organisation (XML Signature)
  An SDK message (SDK Meddelande in the XHE envelope) carries an enveloped XML Signature
  by the sending organisation, as in the published examples: one Reference with URI ""
  (the whole document), the enveloped-signature transform, SHA-256, RSA-SHA256 or
  ECDSA-SHA256, the signing certificate in KeyInfo/X509Data, the Signature the XHE root's
  last child. The sender is the organisation of the signing certificate: FromParty's ID is
  0007:<organisation number> (0007, the ISO 6523 code of Swedish organisation numbers) and
  the certificate carries that number, and it chains to a CA the receiver trusts (the
  run's PKI). Applies when the IUT config declares it ([[message]] signature =
  "enveloped"; signer = the PKI identity that signs, default the run's client identity);
  the harness then signs every message of that type it sends, in the other XML features
  too. Each wrongly signed message below is otherwise valid and is first checked by the
  harness's own verifier to be wrong for exactly its reason; it must be refused with a
  declared status, must not appear among the accepted messages, and a valid message is
  accepted right after.

  @role:receiver @req:SDK-SPEC @req:SDK-5.4-KEYS
  Scenario: a correctly signed SDK message is accepted
    Given the XML message type "sdk-meddelande"
    When the client sends an XML message with the signature case "valid"
    Then the signed XML message is accepted

  @role:receiver @req:SDK-SPEC @req:SDK-5.4-KEYS
  Scenario Outline: an SDK message with the signature case <case> is refused
    Given the XML message type "sdk-meddelande"
    When the client sends an XML message with the signature case "<case>"
    Then the XML message is refused with a declared status
    And the refusal leaks no internals
    And the message is not among the accepted messages
    And a valid XML message is accepted right after

    Examples:
      | case                    |
      | unsigned                |
      | altered-signature-value |
      | altered-content         |
      | other-organisation      |
      | other-document          |
      | untrusted-ca            |

  # The sender side: the IUT is given each message unsigned, with its own organisation
  # (sender.client_cert) as the XHE sender, and must sign it as that organisation.
  @role:sender @req:SDK-SPEC @req:SDK-5.4-KEYS
  Scenario: the SDK messages the IUT sends are signed by its own organisation
    Given the XML message type "sdk-meddelande"
    And a simulated receiver that answers 200
    When the IUT sends 3 XML messages to the simulated receiver
    Then every XML message the IUT sent is signed by the IUT's organisation
