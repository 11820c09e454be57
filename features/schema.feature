Feature: Invalid messages are refused, valid ones accepted
  "Information that cannot be interpreted or is invalid is not accepted." Each class of
  schema, body and header defect is sent to the IUT's receiving endpoint: it must be refused
  with a declared status (default 400, 413, 415, 422), must not appear among the accepted
  messages, must not leak internals in the error, and the IUT must accept a valid message
  right after. A property scenario sends generated invalid messages; if one is accepted, the
  report gives the shrunk, minimal counter-example and the JSON pointer of the rule.

  @role:receiver @req:FMK-2.6.2-VALIDATE
  Scenario Outline: a registry notification with <defect> is refused
    Given the message type "notification"
    When the client sends a message with the defect "<defect>"
    Then the message is refused with a declared status
    And the refusal leaks no internals
    And the message is not among the accepted messages
    And a valid message is accepted right after

    Examples:
      | defect                 |
      | missing-required-field |
      | wrong-type             |
      | unknown-enum-value     |
      | pattern-violation      |
      | out-of-range           |
      | extra-property         |
      | malformed-json         |
      | truncated-body         |
      | invalid-utf8           |
      | wrong-content-type     |
      | missing-content-type   |
      | oversize-body          |
      | deep-nesting           |
      | duplicate-keys         |
      | empty-body             |

  @role:server @req:EB-SCHEMA-1
  Scenario Outline: an EPOC order with <defect> is refused
    Given the message type "epoc"
    When the client sends a message with the defect "<defect>"
    Then the message is refused with a declared status
    And the refusal leaks no internals
    And the message is not among the accepted messages
    And a valid message is accepted right after

    Examples:
      | defect                 |
      | missing-required-field |
      | wrong-type             |
      | unknown-enum-value     |
      | pattern-violation      |
      | luhn-check-digit       |
      | out-of-range           |
      | extra-property         |
      | malformed-json         |
      | truncated-body         |
      | invalid-utf8           |
      | wrong-content-type     |
      | missing-content-type   |
      | oversize-body          |
      | deep-nesting           |
      | duplicate-keys         |
      | empty-body             |

  @role:receiver @req:FMK-2.6.2-VALIDATE
  Scenario: 200 generated invalid registry notifications are all refused
    Given the message type "notification"
    When the client sends 200 generated invalid messages
    Then every generated invalid message is refused

  @role:server @req:EB-SCHEMA-1
  Scenario: 200 generated invalid EPOC orders are all refused
    Given the message type "epoc"
    When the client sends 200 generated invalid messages
    Then every generated invalid message is refused

  @role:server @req:EB-VER-1
  Scenario: the current API version works
    When the client calls the current API version
    Then the call succeeds

  @role:server @req:EB-VER-1
  Scenario: an unsupported API version gets a clear error
    When the client calls the unsupported API version
    Then the call is refused with an error naming the version

  @role:server @req:FMK-2.5-VER
  Scenario: a deprecated API version still works and announces its sunset
    When the client calls the deprecated API version
    Then the call succeeds
    And the answer carries Deprecation and Sunset headers

  # What the IUT *sends*: the connected system's side (EB-SCHEMA-1, FMK 2.6.4), not the
  # receiver's validation (FMK-2.6.2-VALIDATE).
  @role:sender @req:EB-SCHEMA-1 @req:FMK-2.6.4-CORRECT
  Scenario: the messages the IUT sends are valid against their schema
    Given a simulated receiver that answers 200
    When the IUT sends 3 messages to the simulated receiver
    Then every message the IUT sent is valid against its schema
