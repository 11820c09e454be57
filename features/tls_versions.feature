@role:server @req:EB-TLS-1
Feature: Only TLS 1.2 or later, with strong cipher suites
  Old protocol versions and weak cipher suites are offered with hand-built ClientHellos
  (modern TLS libraries cannot offer them); the IUT must refuse each with an alert, a close
  or a reset. TLS 1.2 and TLS 1.3 must work.

  Weak means RC4, DES/3DES, NULL, EXPORT, anonymous, plain RSA key exchange (no forward
  secrecy) and CBC with HMAC-SHA-1. They are offered twice: with RSA signature algorithms
  and RSA-authenticated suites, then with ECDSA ones, so an IUT with an RSA and an ECDSA
  certificate is examined with both. A strong control offer tells a refusal from a missing
  certificate; the evidence names what could not be examined.

  Scenario Outline: a ClientHello offering only TLS <version> is refused
    When a client offers only TLS <version> in a raw ClientHello
    Then the IUT refuses the handshake

    Examples:
      | version |
      | 1.0     |
      | 1.1     |

  Scenario: TLS 1.2 ClientHellos offering only weak cipher suites are refused
    When a client offers TLS 1.2 with only weak cipher suites
    Then the IUT refuses the handshake

  Scenario Outline: TLS <version> is accepted (<key> client certificate)
    Given a client presenting the certificate "<cert>"
    And the client only speaks TLS <version>
    When the client requests the health endpoint
    Then the handshake uses TLS <version>

    Examples:
      | version | cert                  | key         |
      | 1.2     | client-5560000001     | ECDSA P-256 |
      | 1.3     | client-5560000001     | ECDSA P-256 |
      | 1.2     | client-5560000001-rsa | RSA 2048    |
      | 1.3     | client-5560000001-rsa | RSA 2048    |
