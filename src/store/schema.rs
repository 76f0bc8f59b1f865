//! Diesel table definitions, written by hand with types both engines share
//! (TEXT ids, UTC `Timestamp`, JSON kept as TEXT). Mirrors `migrations/{sqlite,postgres}`.

diesel::table! {
    api_keys (id) {
        id -> Text,
        name -> Text,
        role -> Text,
        key_hash -> Text,
        key_prefix -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    surveys (id) {
        id -> Text,
        kind -> Text,
        name -> Text,
        question -> Nullable<Text>,
        follow_up_question -> Nullable<Text>,
        brand -> Nullable<Text>,
        brand_color -> Nullable<Text>,
        topic -> Nullable<Text>,
        locale -> Text,
        status -> Text,
        public_slug -> Nullable<Text>,
        throttle_days -> Integer,
        reminder_after_days -> Nullable<Integer>,
        edit_window_hours -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        archived_at -> Nullable<Timestamp>,
        followup_assignee -> Nullable<Text>,
        resurvey_after_days -> Nullable<Integer>,
        slack_webhook_url -> Nullable<Text>,
        report_segments -> Text,
    }
}

diesel::table! {
    contacts (id) {
        id -> Text,
        email -> Nullable<Text>,
        name -> Nullable<Text>,
        external_id -> Nullable<Text>,
        properties -> Text,
        value -> Nullable<Double>,
        last_surveyed_at -> Nullable<Timestamp>,
        last_responded_at -> Nullable<Timestamp>,
        unsubscribed_at -> Nullable<Timestamp>,
        erased_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    invitations (id) {
        id -> Text,
        survey_id -> Text,
        contact_id -> Text,
        channel -> Text,
        token -> Text,
        status -> Text,
        reason -> Nullable<Text>,
        send_at -> Timestamp,
        next_attempt_at -> Timestamp,
        claimed_until -> Nullable<Timestamp>,
        claimed_by -> Nullable<Text>,
        attempts -> Integer,
        last_error -> Nullable<Text>,
        message_id -> Nullable<Text>,
        sent_at -> Nullable<Timestamp>,
        responded_at -> Nullable<Timestamp>,
        reminder_sent_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        opened_at -> Nullable<Timestamp>,
        origin -> Text,
        remind_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    responses (id) {
        id -> Text,
        survey_id -> Text,
        invitation_id -> Nullable<Text>,
        contact_id -> Nullable<Text>,
        score -> Integer,
        category -> Text,
        comment -> Nullable<Text>,
        channel -> Text,
        locale -> Nullable<Text>,
        submission_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    followups (id) {
        id -> Text,
        response_id -> Text,
        survey_id -> Text,
        contact_id -> Nullable<Text>,
        score -> Integer,
        comment -> Nullable<Text>,
        status -> Text,
        contact_value -> Nullable<Double>,
        assignee -> Nullable<Text>,
        outcome -> Nullable<Text>,
        due_at -> Timestamp,
        answered_at -> Timestamp,
        resolved_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        resurvey_invitation_id -> Nullable<Text>,
        overdue_notified_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    followup_activities (id) {
        id -> Text,
        followup_id -> Text,
        kind -> Text,
        actor -> Nullable<Text>,
        body -> Nullable<Text>,
        data -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhooks (id) {
        id -> Text,
        url -> Text,
        secret -> Text,
        events -> Text,
        active -> Bool,
        created_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        previous_secret -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Timestamp>,
        failing_since -> Nullable<Timestamp>,
        disabled_reason -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        webhook_id -> Nullable<Text>,
        event -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        claimed_until -> Nullable<Timestamp>,
        claimed_by -> Nullable<Text>,
        last_status_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        delivered_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        contact_id -> Nullable<Text>,
        kind -> Text,
        target_url -> Nullable<Text>,
        followup_id -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Text,
        delivery_id -> Text,
        attempted_at -> Timestamp,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        duration_ms -> Integer,
    }
}

diesel::table! {
    emails (id) {
        id -> Text,
        kind -> Text,
        to_address -> Text,
        subject -> Text,
        body_text -> Text,
        body_html -> Nullable<Text>,
        in_reply_to -> Nullable<Text>,
        followup_id -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        claimed_until -> Nullable<Timestamp>,
        claimed_by -> Nullable<Text>,
        last_error -> Nullable<Text>,
        message_id -> Nullable<Text>,
        sent_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        from_name -> Nullable<Text>,
        reply_to -> Nullable<Text>,
        pruned_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    idempotency_keys (api_key_id, idempotency_key) {
        api_key_id -> Text,
        idempotency_key -> Text,
        request_hash -> Text,
        response_status -> Integer,
        response_body -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    job_runs (job, period) {
        job -> Text,
        period -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        role -> Text,
        active -> Bool,
        password_hash -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_sign_in_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sign_in_tokens (token_hash) {
        token_hash -> Text,
        user_id -> Text,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        user_id -> Text,
        csrf_token -> Text,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    saved_views (id) {
        id -> Text,
        user_id -> Text,
        name -> Text,
        query -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(invitations -> surveys (survey_id));
diesel::joinable!(invitations -> contacts (contact_id));
diesel::joinable!(responses -> surveys (survey_id));
diesel::table! {
    contact_activities (id) {
        id -> Text,
        contact_id -> Text,
        kind -> Text,
        actor -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(contact_activities -> contacts (contact_id));
diesel::joinable!(responses -> contacts (contact_id));
diesel::joinable!(responses -> invitations (invitation_id));
diesel::joinable!(followups -> responses (response_id));
diesel::joinable!(followups -> contacts (contact_id));
diesel::joinable!(followup_activities -> followups (followup_id));
diesel::joinable!(webhook_deliveries -> webhooks (webhook_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));
diesel::joinable!(sign_in_tokens -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(saved_views -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    api_keys,
    surveys,
    contacts,
    contact_activities,
    invitations,
    responses,
    followups,
    followup_activities,
    webhooks,
    webhook_deliveries,
    webhook_attempts,
    emails,
    idempotency_keys,
    job_runs,
    users,
    sign_in_tokens,
    sessions,
    saved_views,
    response_segments,
    segment_daily,
    segment_backfills,
);

diesel::table! {
    response_segments (response_id, name) {
        response_id -> Text,
        name -> Text,
        value -> Nullable<Text>,
    }
}

diesel::table! {
    segment_daily (survey_id, name, day, has_value, value, score, shard) {
        survey_id -> Text,
        name -> Text,
        day -> Text,
        has_value -> Integer,
        value -> Text,
        score -> Integer,
        shard -> Integer,
        n -> BigInt,
    }
}

diesel::table! {
    segment_backfills (survey_id, name) {
        survey_id -> Text,
        name -> Text,
        next_from -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::joinable!(response_segments -> responses (response_id));
