@role:client
Feature: The IUT as a client of a peer's API
  The IUT calls an API the harness plays: a simulated server with mutual TLS whose
  answers the scenario programs. A client checks the server's certificate as a server
  checks the client's, presents its own organisation's certificate, and does not load the
  service unnecessarily: it keeps its declared request rate, honours 429 and 503 with
  Retry-After, backs off from a failing server, and asks only for what changed since its
  last read.

  @req:EB-MTLS-2
  Scenario: the client presents its own organisation's certificate
    Given a simulated API server
    When the IUT makes 1 call to the simulated API server
    Then the IUT presents its organisation's certificate

  @req:EB-MTLS-1
  Scenario Outline: the client refuses a server certificate that is <problem>
    Given a simulated API server presenting the certificate "<cert>"
    When the IUT makes 1 call to the simulated API server
    Then the IUT refuses the server's certificate

    Examples:
      | problem                | cert                  |
      | expired                | server-expired        |
      | not yet valid          | server-not-yet-valid  |
      | for another host       | server-wrong-host     |

    @req:FMK-2.1-CA
    Examples: not issued by the agreed CA
      | problem                | cert                  |
      | from an unknown root   | server-untrusted      |
      | self-signed            | server-self-signed    |

    @req:FMK-2.1-REVOKE
    Examples: revoked on the CA's CRL
      | problem                | cert                  |
      | revoked                | server-revoked        |

  @req:EB-MTLS-1 @req:FMK-2.1-REVOKE
  Scenario: the client refuses a server certificate revoked since the last CRL
    Given the IUT checks revocation by OCSP
    And a simulated API server presenting the certificate "server-revoked-ocsp"
    When the IUT makes 1 call to the simulated API server
    Then the IUT refuses the server's certificate

  @req:EB-MTLS-1
  Scenario: the client refuses a server whose chain lacks the intermediate it was not given
    Given a simulated API server presenting its certificate without the intermediate
    When the IUT makes 1 call to the simulated API server
    Then the IUT refuses the server's certificate

  @req:FMK-2.4-LOAD
  Scenario: the client keeps to its declared request rate
    Given a simulated API server
    When the IUT makes calls to the simulated API server as fast as it may
    Then the IUT keeps to its declared request rate

  @req:FMK-2.4-LOAD
  Scenario: the client honours 429 with Retry-After in seconds
    Given a simulated API server that answers 429 with Retry-After 1 s to the first call
    When the IUT makes 1 call to the simulated API server
    Then the IUT waits as long as the Retry-After asks before calling again

  @req:FMK-2.4-LOAD
  Scenario: the client honours 503 with Retry-After as an HTTP date
    Given a simulated API server that answers 503 with a Retry-After date 2 s ahead to the first call
    When the IUT makes 1 call to the simulated API server
    Then the IUT waits as long as the Retry-After asks before calling again

  @req:FMK-2.4-LOAD
  Scenario: the client backs off from a server refusing it without Retry-After
    Given a simulated API server that answers 429 without Retry-After during the first 2000 ms
    When the IUT makes 1 call to the simulated API server
    Then the IUT backs off from the failing server

  @req:FMK-2.4-LOAD
  Scenario: the client backs off from a server resetting its calls
    Given a simulated API server that resets the first 3 calls
    When the IUT makes 1 call to the simulated API server
    Then the IUT backs off from the failing server

  @req:FMK-2.4-LOAD
  Scenario: the client reads what changed since its last read, not everything again
    Given a simulated API server
    When the IUT makes 3 calls to the simulated API server
    Then later calls ask only for what changed since the last read
