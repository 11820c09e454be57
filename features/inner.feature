@req:SDK-2.4-INNER @role:server @role:receiver @role:sender @role:router
Feature: Confidentiality and integrity between the connecting system and the access point
  The inner endpoint declared in [inner] (e.g. the message service behind an access point)
  takes mutual TLS 1.2 or later only: plain HTTP, old TLS, no client certificate and an
  untrusted one are refused, and the connecting system's declared certificate gets in.

  Scenario: plain HTTP to the inner endpoint is refused
    When a client sends plain HTTP to the inner endpoint
    Then the plain-text request is refused without protected data

  Scenario Outline: TLS <version> to the inner endpoint is refused
    When a client offers only TLS <version> in a raw ClientHello to the inner endpoint
    Then the IUT refuses the handshake

    Examples:
      | version |
      | 1.0     |
      | 1.1     |

  Scenario: the inner endpoint requires a client certificate
    Given a client presenting no certificate
    When the client requests the inner endpoint
    Then the request is refused without protected data

  Scenario: the inner endpoint refuses an untrusted client certificate
    Given a client presenting the certificate "client-untrusted-root"
    When the client requests the inner endpoint
    Then the request is refused without protected data

  Scenario: the connecting system's declared certificate gets in
    Given a client presenting the inner endpoint's declared certificate
    When the client requests the inner endpoint
    Then the inner endpoint lets the connecting system in
