Feature: SDK message receivers survive XML attacks without processing them
  Each attack is the valid SDK example message with one hostile construct added, so that
  a receiver which processed the construct would find an otherwise valid message. The
  harness runs a canary HTTP server on loopback for each scenario, and writes a canary
  file; the attacks point at them. A receiver must refuse each attack within the request
  deadline with a declared status (default 400, 413, 415, 422) — never accept it, never
  fail with 5xx or no answer — must not reveal what processing it would have yielded (the
  canary's token, an expanded entity), must not list it among accepted messages, must
  never contact the canary, and must accept a valid message right after (so a receiver
  that refuses everything fails there).

  @role:receiver @req:SDK-SPEC
  Scenario Outline: an SDK message carrying <attack> is refused without being processed
    Given the XML message type "sdk-meddelande"
    And a canary server the IUT must not contact
    When the client sends an XML message with the attack "<attack>"
    Then the XML attack is refused in time with a declared status
    And the answer reveals nothing of the attack
    And the refusal leaks no internals
    And the message is not among the accepted messages
    And a valid XML message is accepted right after
    And the IUT fetched nothing from the canary

    Examples:
      | attack              |
      | xxe-file            |
      | xxe-http            |
      | parameter-entity    |
      | billion-laughs      |
      | quadratic-blowup    |
      | external-dtd        |
      | oversized-text      |
      | oversized-attribute |
      | deep-nesting        |

  # An xsi:schemaLocation hint leaves the message valid: the receiver may accept it, but
  # must validate against its own schema and never fetch the one the hint names.
  @role:receiver @req:SDK-SPEC
  Scenario: an SDK message naming a schema on the canary is handled without fetching it
    Given the XML message type "sdk-meddelande"
    And a canary server the IUT must not contact
    When the client sends an XML message with the attack "schema-location"
    Then the XML attack is answered in time without a server error
    And the answer reveals nothing of the attack
    And a valid XML message is accepted right after
    And the IUT fetched nothing from the canary
