package com.recipeml.client;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonSubTypes;
import com.fasterxml.jackson.annotation.JsonTypeInfo;
import java.util.List;
import java.util.Map;

/**
 * The request and response bodies of the Recipe ML API, as typed records.
 *
 * <p>They mirror the service's OpenAPI document ({@code /docs.json}, shown at {@code /docs}):
 * snake_case on the wire, named component by component ({@code @JsonProperty} works with every
 * Jackson 2.12+; a naming strategy on records needs 2.15), except the interaction event, which is
 * the camelCase event the backend also publishes to Kafka. Request fields left {@code null} are
 * not sent, so the service applies its defaults.
 */
public final class Models {
    private Models() {}

    // -- requests -------------------------------------------------------------------

    /** Personal recommendations for one user; every field but {@code userId} is optional. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record RecipeRequest(
            @JsonProperty("user_id") long userId,
            @JsonProperty("top_k") Integer topK,
            @JsonProperty("exclude_recipe_ids") List<Long> excludeRecipeIds,
            @JsonProperty("include_recipe_ids") List<Long> includeRecipeIds,
            Double diversity,
            @JsonProperty("max_fsa_score") Double maxFsaScore) {
        public static RecipeRequest of(long userId, int topK) {
            return new RecipeRequest(userId, topK, null, null, null, null);
        }
    }

    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record SimilarUsersRequest(@JsonProperty("user_id") long userId, @JsonProperty("top_k") Integer topK) {}

    /** "More like this": recipes close to {@code recipeId}, with the filters of a recommendation. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record SimilarRecipesRequest(
            @JsonProperty("recipe_id") long recipeId,
            @JsonProperty("top_k") Integer topK,
            @JsonProperty("exclude_recipe_ids") List<Long> excludeRecipeIds,
            @JsonProperty("include_recipe_ids") List<Long> includeRecipeIds,
            Double diversity,
            @JsonProperty("max_fsa_score") Double maxFsaScore) {
        public static SimilarRecipesRequest of(long recipeId, int topK) {
            return new SimilarRecipesRequest(recipeId, topK, null, null, null, null);
        }
    }

    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record BatchRequest(
            @JsonProperty("user_ids") List<Long> userIds,
            @JsonProperty("top_k") Integer topK,
            @JsonProperty("exclude_recipe_ids") List<Long> excludeRecipeIds,
            @JsonProperty("include_recipe_ids") List<Long> includeRecipeIds,
            Double diversity,
            @JsonProperty("max_fsa_score") Double maxFsaScore) {
        public static BatchRequest of(List<Long> userIds, int topK) {
            return new BatchRequest(userIds, topK, null, null, null, null);
        }
    }

    /** Without recent recipes: trending; with them: folded in from a new user's first recipes. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record ColdStartRequest(
            @JsonProperty("top_k") Integer topK,
            @JsonProperty("recent_recipe_ids") List<Long> recentRecipeIds,
            @JsonProperty("exclude_recipe_ids") List<Long> excludeRecipeIds,
            @JsonProperty("include_recipe_ids") List<Long> includeRecipeIds,
            Double diversity,
            @JsonProperty("max_fsa_score") Double maxFsaScore) {
        public static ColdStartRequest of(int topK, List<Long> recentRecipeIds) {
            return new ColdStartRequest(topK, recentRecipeIds, null, null, null, null);
        }
    }

    /**
     * One interaction, exactly the event published to the Kafka topic {@code interactions}
     * (camelCase). {@code rating} (1-5) only with {@code "rate"}; {@code timestamp} is ISO 8601
     * ({@code Instant.toString()}); both it and {@code eventId} may be null.
     */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record InteractionEvent(
            long userId,
            long recipeId,
            String interactionType,
            Integer rating,
            String timestamp,
            String eventId) {}

    // -- responses ------------------------------------------------------------------

    public record Recommendation(@JsonProperty("recipe_id") long recipeId, double score, int rank) {}

    public record SimilarUser(@JsonProperty("user_id") long userId, double score, int rank) {}

    /**
     * The published values of {@code model_used}: the links of the fallback chain. Jackson refuses a value
     * outside them (its default), so a service that drifts from the contract fails loudly here.
     */
    public enum ModelUsed {
        @JsonProperty("two_tower") TWO_TOWER,
        @JsonProperty("als") ALS,
        @JsonProperty("popularity") POPULARITY
    }

    /**
     * {@code modelUsed}: two_tower, else als, else popularity (the fallback chain); {@code personalizedBy}: the
     * personal scorer of the personal positions ({@code "ease"}), or null; {@code modelVersion}: the store tag
     * (name:version) of the version that answered; {@code recommendationId}: this answer's id, to send back as
     * {@code recommendationId} with the interactions it led to; {@code variant}: the experiment arm that answered.
     */
    public record RecipeRecommendations(
            @JsonProperty("recommendation_id") String recommendationId, String variant, @JsonProperty("model_used") ModelUsed modelUsed, @JsonProperty("model_version") String modelVersion, @JsonProperty("personalized_by") String personalizedBy, @JsonProperty("latency_ms") double latencyMs, boolean cached, @JsonProperty("user_id") long userId, List<Recommendation> recommendations) {}

    public record ColdStartRecommendations(
            @JsonProperty("recommendation_id") String recommendationId, String variant, @JsonProperty("model_used") ModelUsed modelUsed, @JsonProperty("model_version") String modelVersion, @JsonProperty("personalized_by") String personalizedBy, @JsonProperty("latency_ms") double latencyMs, boolean cached, List<Recommendation> recommendations) {}

    public record SimilarUsers(
            @JsonProperty("recommendation_id") String recommendationId, String variant, @JsonProperty("model_used") ModelUsed modelUsed, @JsonProperty("model_version") String modelVersion, @JsonProperty("latency_ms") double latencyMs, boolean cached, @JsonProperty("user_id") long userId, @JsonProperty("similar_users") List<SimilarUser> similarUsers) {}

    public record SimilarRecipes(
            @JsonProperty("recommendation_id") String recommendationId, String variant, @JsonProperty("model_used") ModelUsed modelUsed, @JsonProperty("model_version") String modelVersion, @JsonProperty("latency_ms") double latencyMs, boolean cached, @JsonProperty("recipe_id") long recipeId, @JsonProperty("similar_recipes") List<Recommendation> similarRecipes) {}

    /** A batch entry: {@link BatchRecipes} ({@code status: "ok"}) or {@link BatchFailure} ({@code "error"}). */
    @JsonTypeInfo(use = JsonTypeInfo.Id.NAME, include = JsonTypeInfo.As.EXISTING_PROPERTY, property = "status", visible = true)
    @JsonSubTypes({
        @JsonSubTypes.Type(value = BatchRecipes.class, name = "ok"),
        @JsonSubTypes.Type(value = BatchFailure.class, name = "error")
    })
    public sealed interface BatchEntry permits BatchRecipes, BatchFailure {
        long userId();
    }

    public record BatchRecipes(
            String status,
            @JsonProperty("recommendation_id") String recommendationId,
            String variant,
            @JsonProperty("model_used") ModelUsed modelUsed,
            @JsonProperty("model_version") String modelVersion,
            @JsonProperty("personalized_by") String personalizedBy,
            @JsonProperty("latency_ms") double latencyMs,
            boolean cached,
            @JsonProperty("user_id") long userId,
            List<Recommendation> recommendations)
            implements BatchEntry {}

    public record BatchFailure(String status, @JsonProperty("user_id") long userId, Problem problem) implements BatchEntry {}

    public record BatchResponse(List<BatchEntry> results, @JsonProperty("latency_ms") double latencyMs) {}

    public record InteractionAccepted(boolean applied, boolean duplicate, @JsonProperty("event_id") String eventId) {}

    public record Health(String status, Map<String, String> models, String redis, String kafka) {}

    /** One invalid field of a request ({@code "body"} for the whole body). */
    public record FieldError(String field, String message, String type) {}

    /**
     * An RFC 9457 problem ({@code application/problem+json}): what every error of the API is.
     * Spring's {@code ProblemDetail} reads the same body.
     */
    public record Problem(
            String type,
            String title,
            int status,
            String detail,
            String instance,
            List<FieldError> errors,
            @JsonProperty("user_id") Long userId,
            @JsonProperty("recipe_id") Long recipeId,
            @JsonProperty("cold_start") String coldStart) {}
}
