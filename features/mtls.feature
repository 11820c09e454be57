@role:server
Feature: Mutual TLS authentication of API clients
  The API is reached only over TLS with a client certificate issued by the agreed CA. The
  organisation number in the certificate decides whose data a client may see. A refusal is
  a TLS alert, a reset, a close or an HTTP 4xx, and never comes with protected data.

  @req:EB-AUTH-1 @req:FMK-2.1-MTLS @req:EB-MTLS-1 @req:EB-MTLS-2
  Scenario Outline: a valid certificate of a registered organisation is let in: <key> (<tls>)
    Given a client presenting the certificate "<cert>"
    And the client only speaks <tls>
    When the client requests its own organisation's data
    Then the request succeeds with the organisation's data

    Examples:
      | cert                  | key         | tls     |
      | client-5560000001     | ECDSA P-256 | TLS 1.2 |
      | client-5560000001     | ECDSA P-256 | TLS 1.3 |
      | client-5560000001-rsa | RSA 2048    | TLS 1.2 |
      | client-5560000001-rsa | RSA 2048    | TLS 1.3 |

  @req:EB-AUTH-1 @req:FMK-2.1-MTLS
  Scenario Outline: a client without a certificate is refused (<tls>)
    Given a client presenting no certificate
    And the client only speaks <tls>
    When the client requests the data of organisation "5560000001"
    Then the request is refused without protected data

    Examples:
      | tls     |
      | TLS 1.2 |
      | TLS 1.3 |

  @req:EB-MTLS-1
  Scenario Outline: an invalid client certificate is refused: <cert> (<tls>)
    Given a client presenting the certificate "<cert>"
    And the client only speaks <tls>
    When the client requests its own organisation's data
    Then the request is refused without protected data

    Examples: expired, not yet valid, wrong key usage, weak key
      | cert                 | tls     |
      | client-expired       | TLS 1.2 |
      | client-expired       | TLS 1.3 |
      | client-not-yet-valid | TLS 1.2 |
      | client-not-yet-valid | TLS 1.3 |
      | client-eku-server    | TLS 1.2 |
      | client-eku-server    | TLS 1.3 |
      | client-weak-key      | TLS 1.2 |
      | client-weak-key      | TLS 1.3 |

    @req:FMK-2.1-REVOKE
    Examples: revoked on the CA's CRL
      | cert           | tls     |
      | client-revoked | TLS 1.2 |
      | client-revoked | TLS 1.3 |

    @req:FMK-2.1-CA
    Examples: not issued by the agreed CA
      | cert                  | tls     |
      | client-untrusted-root | TLS 1.2 |
      | client-untrusted-root | TLS 1.3 |
      | client-self-signed    | TLS 1.2 |
      | client-self-signed    | TLS 1.3 |
      | client-bad-signature  | TLS 1.2 |
      | client-bad-signature  | TLS 1.3 |

    @req:SDK-5.4-KEYS
    Examples: presented without possession of its private key
      | cert                | tls     |
      | client-key-mismatch | TLS 1.2 |
      | client-key-mismatch | TLS 1.3 |

  # Revoked after the CRL was published: the CRL does not list it yet, the OCSP responder
  # (the URL in the certificate's Authority Information Access) answers `revoked`.
  @req:EB-MTLS-1 @req:FMK-2.1-REVOKE
  Scenario Outline: a certificate revoked since the last CRL is refused by an IUT that checks OCSP (<tls>)
    Given the IUT checks revocation by OCSP
    And a client presenting the certificate "client-revoked-ocsp"
    And the client only speaks <tls>
    When the client requests its own organisation's data
    Then the request is refused without protected data, and the evidence shows what the OCSP responder was asked

    Examples:
      | tls     |
      | TLS 1.2 |
      | TLS 1.3 |

  @req:EB-MTLS-2
  Scenario Outline: a certificate without a registered organisation number is refused: <cert>
    Given a client presenting the certificate "<cert>"
    When the client requests the data of organisation "5560000001"
    Then the request is refused without protected data

    Examples:
      | cert                    |
      | client-no-org           |
      | client-unregistered-org |

  @req:SDK-4.1-ISOLATION @req:SDK-4.2-METADATA
  Scenario: a client cannot read another organisation's data
    Given a client presenting the certificate "client-5560000001"
    When the client requests the data of organisation "5560000002"
    Then the request is refused without protected data
    And the response contains no data of organisation "5560000002"

  @req:EB-MTLS-1 @req:FMK-2.1-CA
  Scenario: the IUT's server certificate chains to the agreed CA for its host name
    Given a client presenting the certificate "client-5560000001"
    When the client connects verifying the server certificate against the agreed CA
    Then the server certificate is accepted
